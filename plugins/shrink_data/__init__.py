"""Built-in data sources for the data users have: `images` (image folders), `arrays` (.npz/.npy), `audio` (WAV
folders), `textfile` (lines, CSV, JSONL), `random` (generated calibration inputs, only when asked for) and `kws`
(spoken keywords synthesised offline with eSpeak NG, as CMSIS-DSP MFCCs).

Each one checks at plan time that its samples fit the model's declared inputs (`PlanContext.inputs`), cuts
train / calibration / eval deterministically by seed (or takes declared splits), and fingerprints its files
without loading them. Each writes a preprocessing record into the bundle, and `shrink verify --data` reads a
user's labelled files by that record with the same code (`shrink_data.readers`). Pillow, scipy and
transformers are imported only while loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shrink import DataProvider, hookimpl
from shrink_data.arrays import Arrays
from shrink_data.audio import Audio
from shrink_data.images import Images
from shrink_data.kws import KeywordSpotting
from shrink_data.synthetic import RandomData
from shrink_data.textfile import TextFiles


@hookimpl
def shrink_register_datasets() -> list[type[DataProvider]]:
    return [Images, Arrays, Audio, TextFiles, RandomData, KeywordSpotting]


@hookimpl
def shrink_preprocessor(record: dict[str, Any], bundle: Path) -> Any | None:
    from shrink_data.readers import reader_for

    return reader_for(record, bundle)
