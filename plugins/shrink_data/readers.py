"""Reading a user's labelled data as a bundle's preprocessing record says (`shrink verify BUNDLE --data PATH`):
an image or WAV folder with one subfolder per label, a JSONL/CSV file of text and labels, an `.npz` of model
inputs and labels. Each reader is rebuilt from the record alone (`shrink_data.records`) and decodes with the
code the compile's data source used; labels map to the record's label names by name. A file that cannot be
read or a label the bundle does not know is one `UsageError` naming it. WAV files at another sample rate are
resampled to the record's, as the `audio` source does at compile time, and the origin says how many were.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shrink import UsageError
from shrink.api.preprocessing import LABELS_FIELD, LabelledSamples, label_indices
from shrink_data.arrays import headers
from shrink_data.files import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, scan
from shrink_data.lazy import Decoder, LazySamples
from shrink_data.records import audio_prep, cmsis_mfcc_prep, image_prep
from shrink_data.textfile import FORMATS, TextFileOptions
from shrink_data.textfile import read as read_text

WHERE = "--data"


def reader_for(record: Mapping[str, Any], bundle: Path) -> Any | None:
    """The reader of a record of kind image, audio, arrays or text; None for other kinds."""
    kind = record.get("kind")
    try:
        if kind == "image":
            return ImageFolder(record)
        if kind == "audio":
            return CmsisMfccWavFolder(record) if record["features"]["type"] == "cmsis-mfcc" else WavFolder(record)
        if kind == "arrays":
            return NpzFile(record)
        if kind == "text":
            return TextFile(record, bundle)
    except ValueError as exc:
        raise UsageError(f"the bundle's {kind} preprocessing record cannot be applied: {exc}", where=WHERE) from None
    return None


def _one_line(problems: list[str], where: str = WHERE) -> UsageError:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return UsageError(problems[0] + more, where=where)


class _Folder:
    """A folder with one subfolder per label, each file decoded on demand by the compile's decoder."""

    kind: str
    extensions: tuple[str, ...]

    def __init__(self, record: Mapping[str, Any], prep: Any) -> None:
        self.prep = prep
        self.input = str(record["input"])
        self.labels: list[str] = list(record["labels"] or [])

    def decode(self, path: Path) -> np.ndarray:
        raise NotImplementedError

    def header_problem(self, path: Path) -> str | None:
        """Why the file cannot be read as the record needs it (read from its header), or None."""
        raise NotImplementedError

    def conversions(self, files: tuple[Path, ...]) -> str:
        """What reading `files` changes beyond the record's decoding, for the origin ("" if nothing)."""
        return ""

    def read(self, path: Path) -> LabelledSamples:
        if path.is_file():
            raise UsageError(f"{str(path)!r} is a file; give a folder of {self.kind} with one subfolder per label "
                             f"(the bundle's labels: {', '.join(self.labels)}), or an .npz of model inputs", where=WHERE)
        folder, problems = scan(path, self.extensions, self.kind, WHERE)
        if folder is None:  # the messages name --data and the folder already
            raise _one_line(problems, where="")
        if not folder.labelled:
            raise UsageError(f"folder {str(path)!r} has no class subfolders; put each file in a subfolder named by its "
                             f"label (the bundle's labels: {', '.join(self.labels)})", where=WHERE)
        for name in folder.classes:
            if name not in self.labels:
                raise UsageError(f"class folder {str(path / name)!r}: {name!r} is not one of the bundle's labels "
                                 f"({', '.join(self.labels)})", where=WHERE,
                                 hint="the bundle scores the classes it was compiled with, matched by folder name")
        bad = [f"{str(file)!r}: {problem}" for file in folder.files if (problem := self.header_problem(file))]
        if bad:
            raise _one_line(bad)
        labels = label_indices(list(folder.file_classes or ()), self.labels, WHERE)
        decoder = Decoder(_reading(self.decode, folder.files), self.prep.shape, self.prep.dtype)
        samples = LazySamples(decoder, np.arange(len(folder.files)))
        origin = (f"folder {str(path)!r} ({len(folder.files)} {self.kind} in {len(folder.classes)} class folders"
                  f"{self.conversions(folder.files)})")
        return LabelledSamples({self.input: samples}, labels, origin)


def _reading(decode: Callable[[Path], np.ndarray], files: tuple[Path, ...]) -> Callable[[int], np.ndarray]:
    def run(index: int) -> np.ndarray:
        try:
            return decode(files[index])
        except Exception as exc:  # whatever the library raises, this file cannot be decoded
            raise UsageError(f"cannot read {str(files[index])!r}: {type(exc).__name__}: {exc}", where=WHERE) from exc
    return run


class ImageFolder(_Folder):
    kind = "images"
    extensions = IMAGE_EXTENSIONS

    def __init__(self, record: Mapping[str, Any]) -> None:
        super().__init__(record, image_prep(record))

    def decode(self, path: Path) -> np.ndarray:
        from shrink_data.images import decode

        return decode(path, self.prep)

    def header_problem(self, path: Path) -> str | None:
        from PIL import Image

        try:
            with Image.open(path):
                return None
        except Exception as exc:  # noqa: BLE001 - Pillow raises several kinds for a file it cannot read
            return f"cannot read it: {type(exc).__name__}: {exc}"


class WavFolder(_Folder):
    kind = "WAV files"
    extensions = AUDIO_EXTENSIONS

    def __init__(self, record: Mapping[str, Any]) -> None:
        super().__init__(record, audio_prep(record))

    def decode(self, path: Path) -> np.ndarray:
        from shrink_data.audio_features import decode

        return decode(path, self.prep)

    def header_problem(self, path: Path) -> str | None:
        from scipy.io import wavfile

        try:
            rate, _ = wavfile.read(path, mmap=True)
        except Exception as exc:  # noqa: BLE001 - scipy raises several kinds for a file it cannot parse
            return f"cannot read it: {type(exc).__name__}: {exc}"
        return None

    def conversions(self, files: tuple[Path, ...]) -> str:
        from scipy.io import wavfile

        others = Counter(rate for rate in (int(wavfile.read(path, mmap=True)[0]) for path in files)
                         if rate != self.prep.sample_rate)
        if not others:
            return ""
        rates = ", ".join(f"{count} at {rate} Hz" for rate, count in sorted(others.items()))
        return f"; {rates}, resampled to {self.prep.sample_rate} Hz"


class CmsisMfccWavFolder(WavFolder):
    """WAV clips as the `kws` source feeds them: CMSIS-DSP MFCCs (`shrink_data.mfcc`), standardized by the record's
    constants."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        prep, self.mean, self.std = cmsis_mfcc_prep(record)
        _Folder.__init__(self, record, prep)
        self._mfcc: Any = None

    def decode(self, path: Path) -> np.ndarray:
        from shrink_data.audio_features import fixed_length, read_wav
        from shrink_data.mfcc import Mfcc

        if self._mfcc is None:
            self._mfcc = Mfcc(self.prep)
        x = self._mfcc(fixed_length(read_wav(path, self.prep.sample_rate), self.prep.samples))
        if self.mean is not None:
            x = ((x - self.mean) / self.std).astype(np.float32)
        return x


class NpzFile:
    """An `.npz` of model inputs (rows `[N, ...]`, already preprocessed) and labels."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.fields: dict[str, str] = dict(record["fields"])
        self.label_field = str(record["label_field"] or LABELS_FIELD)
        self.labels: list[str] = list(record["labels"] or [])

    def read(self, path: Path) -> LabelledSamples:
        where = f"{WHERE}: {str(path)!r}"
        if not path.is_file() or path.suffix.lower() != ".npz":
            raise UsageError(f"{str(path)!r} is not an .npz file (a field per model input and a {self.label_field!r} "
                             "field)", where=WHERE)
        try:
            arrays = headers(path)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise UsageError(f"cannot read it: {type(exc).__name__}: {exc}", where=where) from None
        names = ", ".join(sorted(map(str, arrays)))
        if self.label_field not in arrays:
            raise UsageError(f"it has no label field {self.label_field!r} (fields: {names})", where=where)
        others = [str(name) for name in arrays if name not in (None, self.label_field)]
        chosen = {}
        for model_input, field in self.fields.items():
            if field in arrays:
                chosen[model_input] = field
            elif len(self.fields) == 1 and len(others) == 1:  # one field feeds the one input, whatever its name
                chosen[model_input] = others[0]
            else:
                raise UsageError(f"it has no field {field!r} for model input {model_input!r} (fields: {names})", where=where)
        counts = {field: arrays[field][0][0] if arrays[field][0] else None for field in [*chosen.values(), self.label_field]}
        if len(set(counts.values())) != 1 or None in counts.values():
            raise UsageError("its fields must be rows of one sample count: "
                             + ", ".join(f"{k} {list(arrays[k][0])}" for k in counts), where=where)
        with np.load(path, allow_pickle=False) as npz:
            inputs = {model_input: npz[field] for model_input, field in chosen.items()}
            raw = npz[self.label_field]
        if raw.ndim != 1:
            raise UsageError(f"labels {self.label_field!r} have shape {list(raw.shape)}; give one per sample", where=where)
        if raw.dtype.kind in "iu":
            labels = label_indices([int(v) for v in raw], self.labels, where)
        elif raw.dtype.kind in "US":
            labels = label_indices(raw.astype(str).tolist(), self.labels, where)
        else:
            raise UsageError(f"labels {self.label_field!r} are {raw.dtype}; give class indices or label names", where=where)
        fields = ", ".join(f"{field} → {model_input}" for model_input, field in chosen.items())
        return LabelledSamples(inputs, labels, f"{path.name} ({len(labels)} rows; {fields})")


class TextFile:
    """A JSONL or CSV/TSV file of sentences and labels, tokenized with the bundle's tokenizer file."""

    def __init__(self, record: Mapping[str, Any], bundle: Path) -> None:
        tokenizer = record["tokenizer"]
        if tokenizer is None or not record["inputs"].get("input_ids"):
            raise ValueError("it does not record the tokenizer that turns text into the model's inputs")
        self.tokenizer = tokenizer
        self.file = bundle / tokenizer["file"]
        self.inputs: dict[str, str] = dict(record["inputs"])
        self.columns = record["columns"]
        self.labels: list[str] = list(record["labels"] or [])

    def read(self, path: Path) -> LabelledSamples:
        from shrink_common.tokenize import encode, load_tokenizer

        fmt = FORMATS.get(path.suffix.lower())
        if not path.is_file() or fmt is None:
            raise UsageError(f"{str(path)!r} is not a JSONL or CSV/TSV file of text and labels", where=WHERE)
        opts = TextFileOptions(path=str(path), format=fmt, text_column=self.columns["text"],
                               label_column=self.columns["label"] or "label")
        found, problems = read_text(path, opts, WHERE)
        if found is None:  # the messages name --data and the file already
            raise _one_line(problems, where="")
        if found.labels is None:
            raise UsageError(f"{str(path)!r} has no label column", where=WHERE)
        labels = label_indices(found.labels, self.labels, f"{WHERE}: {str(path)!r}")
        if not self.file.is_file():
            raise UsageError(f"the bundle has no tokenizer file {self.file.name!r}", where=str(self.file.parent))
        max_length = int(self.tokenizer["max_length"])
        ids, mask = encode(load_tokenizer(self.file, max_length), found.texts,
                           max_length if self.tokenizer["padding"] == "max_length" else None)
        inputs = {self.inputs["input_ids"]: ids}
        if "attention_mask" in self.inputs:
            inputs[self.inputs["attention_mask"]] = mask
        if "token_type_ids" in self.inputs:  # one sentence per sample: every token is of segment 0
            inputs[self.inputs["token_type_ids"]] = np.zeros_like(ids)
        return LabelledSamples(inputs, labels, f"{path.name} ({len(labels)} {fmt} rows, tokenized)")
