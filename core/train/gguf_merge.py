"""The base GGUF with a training run's LoRA applied, as one GGUF file (what llama.cpp's
``llama-export-lora`` writes), for tools that take a single model file.

Every adapted weight becomes ``W + (alpha / r) * B @ A``, with ``B`` and ``A`` exactly the tensors of
the GGUF LoRA (``gguf_lora.lora_tensors``: llama's q/k row permutation and peft's scaling already
applied), so the merged model computes what llama.cpp computes with ``--lora``. A quantized base
weight is dequantized with the ``gguf`` package and the merged weight is stored in F16, as
``llama-export-lora`` does: re-quantizing to the base's 4 or 5 bits would round most of the LoRA's
small change away. The other tensors and all metadata are copied as they are, except
``general.file_type`` (F16 once most weights are F16) and ``general.name``. The file is written
tensor by tensor (one weight in memory at a time) to a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError

_MOSTLY_F16 = 1  # llama.cpp's LLAMA_FTYPE_MOSTLY_F16


@dataclass
class MergedGguf:
    path: Path
    size_bytes: int
    n_merged: int  # weights the adapter changed


def write_merged_gguf(
    base_gguf: str | os.PathLike,
    lora: list[tuple[str, Any]],
    alpha: float,
    dest: str | os.PathLike,
    *,
    name: str = "",
) -> MergedGguf:
    """Write ``base_gguf`` with the LoRA ``lora`` (``[(name.lora_a|.lora_b, array)]``) merged in to ``dest``."""
    import gguf
    import numpy as np

    base_gguf, dest = Path(base_gguf), Path(dest)
    try:
        reader = gguf.GGUFReader(str(base_gguf))
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read the base model {base_gguf} as a GGUF file ({exc}).") from None
    pairs: dict[str, dict[str, Any]] = {}
    for tensor_name, array in lora:
        weight, _, which = tensor_name.rpartition(".lora_")
        pairs.setdefault(weight, {})[which] = array
    shapes = {t.name: _shape(t) for t in reader.tensors}
    missing = sorted(set(pairs) - set(shapes))
    if missing:
        raise ModelError(
            f"The adapter changes {', '.join(missing[:3])}, which {base_gguf} does not have: it was not trained on this model."
        )
    for weight, ab in pairs.items():
        _check_fits(weight, ab, shapes[weight])
    arch_field = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    if arch_field is None:
        raise ModelError(f"{base_gguf} has no general.architecture: it is not a model GGUF llama.cpp can load.")
    arch = str(arch_field.contents())
    from ..paths import atomic_file

    gib = sum(2 * int(np.prod(shapes[t.name])) if t.name in pairs else int(t.data.nbytes) for t in reader.tensors) / 2**30
    advice = f"It needs about {gib:.1f} GiB; pick a folder you can write to with room for it."
    with atomic_file(dest, what="the merged model ", advice=advice) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        _copy_metadata(reader, writer, name)
        for t in reader.tensors:
            if t.name in pairs:
                shape = shapes[t.name]
                writer.add_tensor_info(
                    t.name, shape, np.dtype(np.float16), 2 * int(np.prod(shape)), gguf.GGMLQuantizationType.F16
                )
            else:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in reader.tensors:
            if t.name in pairs:
                writer.write_tensor_data(_merged(t, pairs[t.name], alpha))
            else:
                writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
        writer.close()
    return MergedGguf(path=dest, size_bytes=dest.stat().st_size, n_merged=len(pairs))


def _shape(tensor: Any) -> tuple[int, ...]:
    """The tensor's numpy shape (rows first): ggml's ``ne`` reversed."""
    return tuple(int(n) for n in reversed(tensor.shape.tolist()))


def _merged(tensor: Any, ab: dict[str, Any], alpha: float) -> Any:
    import gguf
    import numpy as np

    w: Any = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False).reshape(_shape(tensor))
    a: Any = np.asarray(ab["a"], dtype=np.float32)
    b: Any = np.asarray(ab["b"], dtype=np.float32)
    w = w + (b @ a) * np.float32(alpha / a.shape[0])  # llama.cpp's scale: alpha / rank
    return w.astype(np.float16)


def _check_fits(weight: str, ab: dict[str, Any], shape: tuple[int, ...]) -> None:
    """A LoRA pair whose product is not the base weight's shape was trained on another model."""
    if set(ab) != {"a", "b"}:
        raise ModelError(f"The adapter has only the lora_{''.join(ab)} matrix of {weight}.")
    got = (int(ab["b"].shape[0]), int(ab["a"].shape[1]))
    if len(shape) != 2 or got != shape:
        raise ModelError(
            f"The adapter's {weight} has shape {got[0]}x{got[1]}, the base model's {'x'.join(map(str, shape))}: "
            "it was not trained on this model."
        )


def _copy_metadata(reader: Any, writer: Any, name: str) -> None:
    """Every key of the base as it is (gguf's own ``gguf_new_metadata`` copies them the same way), but
    the architecture (the writer sets it), the file type and, when given, the name."""
    import gguf

    skip = {gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE}
    if name:
        skip.add(gguf.Keys.General.NAME)
    for field in reader.fields.values():
        if field.name in skip or field.name.startswith("GGUF."):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    writer.add_file_type(_MOSTLY_F16)
    if name:
        writer.add_name(name)
