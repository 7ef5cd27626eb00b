"""Render knowmix.svg into the PNG (Linux .desktop, app window) and ICO (Windows) icons.

    QT_QPA_PLATFORM=offscreen .venv/bin/python resources/icons/make_icons.py

The macOS .icns is made on a Mac from knowmix.png by packaging/macos/build_dmg.sh (sips + iconutil).
"""

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent


def render(renderer: QSvgRenderer, size: int) -> QImage:
    img = QImage(size, size, QImage.Format_ARGB32)
    img.fill(Qt.transparent)
    painter = QPainter(img)
    painter.setRenderHint(QPainter.Antialiasing)
    renderer.render(painter)
    painter.end()
    return img


def main() -> None:
    app = QGuiApplication([])  # noqa: F841 - QPainter needs an application
    renderer = QSvgRenderer(QByteArray((HERE / "knowmix.svg").read_bytes()))
    render(renderer, 256).save(str(HERE / "knowmix.png"))
    render(renderer, 256).save(str(HERE / "knowmix.ico"))  # Qt's qico plugin writes a 256 px icon


if __name__ == "__main__":
    main()
