; Inno Setup 6 script for KnowMix (Windows x64). Build the app first, then compile this script:
;
;   py -3.11 packaging\build.py --edition lite --self-check
;   "C:\Program Files (x86)\Inno Setup 6\ISCC.exe" /DEdition=lite packaging\windows\knowmix.iss
;
; -> packaging\build\KnowMix-lite-0.1.0-windows-x64-setup.exe  (use /DEdition=full for the full edition)
; Per-user install by default (no admin prompt); the user may choose an all-users install instead.

#ifndef Edition
  #define Edition "lite"
#endif
#define AppVersion "0.1.0"
#if Edition == "full"
  #define EditionName "Full"
#else
  #define EditionName "Lite"
#endif
#define AppName "KnowMix " + EditionName
#define SourceDir "..\build\dist\knowmix-" + Edition

[Setup]
; One AppId per edition, so both editions can be installed side by side.
#if Edition == "full"
AppId={{6F1B2C3D-4E5F-4A6B-9C7D-8E9F0A1B2C3F}
#else
AppId={{6F1B2C3D-4E5F-4A6B-9C7D-8E9F0A1B2C3E}
#endif
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=KnowMix
AppComments=Find which fine-tuning examples a local LLM already knows and plan the LoRA mix. Works offline.
DefaultDirName={autopf}\KnowMix {#EditionName}
DefaultGroupName=KnowMix
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\build
OutputBaseFilename=KnowMix-{#Edition}-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\knowmix.ico
UninstallDisplayIcon={app}\KnowMixApp.exe
Compression=lzma2/max
SolidCompression=yes
LZMANumBlockThreads=4
WizardStyle=modern
LicenseFile=..\..\resources\sample\LICENSE-EntityQuestions
ChangesEnvironment=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the knowmix command to PATH (command line use)"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\KnowMixApp.exe"; WorkingDir: "{userdocs}"
Name: "{group}\{#AppName} self-check"; Filename: "{app}\knowmix.exe"; Parameters: "--self-check"; WorkingDir: "{userdocs}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\KnowMixApp.exe"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
Root: HKA; Subkey: "{code:EnvKey}"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\KnowMixApp.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the app writes into its own folder; the user's projects and %USERPROFILE%\.knowmix stay.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
function EnvKey(Param: String): String;
begin
  if IsAdminInstallMode then
    Result := 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
  else
    Result := 'Environment';
end;

function NeedsAddPath(Dir: String): Boolean;
var
  Paths: String;
  RootKey: Integer;
begin
  if IsAdminInstallMode then RootKey := HKEY_LOCAL_MACHINE else RootKey := HKEY_CURRENT_USER;
  if not RegQueryStringValue(RootKey, EnvKey(''), 'Path', Paths) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') = 0;
end;
