"""The `images` data source: image folders decoded with Pillow and preprocessed for the model.

Preprocessing, in order: convert to the channel mode (RGB, or L for grayscale), resize (straight to `size`,
or the shorter side to `resize` and a center crop to `size`), scale to [0, 1] or keep [0, 255], reorder to
BGR if asked, subtract `mean` and divide by `std` per channel, lay out as NCHW / NHWC / NHW and cast. What
the recipe leaves out comes from the model's input: a `[1, 3, 224, 224]` float input gives 224x224 RGB NCHW
float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from shrink.api.inputs import sample_shape
from shrink_data.files import IMAGE_EXTENSIONS
from shrink_data.folders import FolderOptions, FolderProvider

Side = Annotated[int, Field(ge=1, le=8192)]
DTYPES = ("float32", "float16", "uint8")


class ImagesOptions(FolderOptions):
    """Options of the `images` data source."""

    size: Side | tuple[Side, Side] | SkipJsonSchema[None] = Field(
        None, description="the samples' [height, width] (or one side for squares); default: the model input's")
    resize: Side | SkipJsonSchema[None] = Field(
        None, description="resize the shorter side to this, keeping the aspect ratio, then center-crop to 'size' "
                          "(e.g. 256 for 224); default: resize straight to 'size'")
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = Field(
        "bilinear", description="Pillow's resampling filter")
    align_corners: bool = Field(
        False, description="resize by linear interpolation of the scaled float image with the corner pixels aligned "
                           "(scipy.ndimage.zoom order 1, PyTorch's align_corners=True: how sklearn.digits is upsampled) "
                           "instead of Pillow's resize of the 8-bit image; bilinear, without 'resize'")
    channels: Literal["rgb", "bgr", "gray"] | SkipJsonSchema[None] = Field(
        None, description="channel order (gray: one channel); default: from the model input's channel count")
    layout: Literal["NCHW", "NHWC", "NHW"] | SkipJsonSchema[None] = Field(
        None, description="sample layout (NHW: grayscale without a channel axis); default: from the model input")
    scale: Literal["0-1", "0-255"] | SkipJsonSchema[None] = Field(
        None, description="pixel values in [0, 1] or kept in [0, 255] (applied before mean/std); default 0-1, "
                          "0-255 for uint8")
    mean: list[float] | SkipJsonSchema[None] = Field(
        None, min_length=1, max_length=3, description="subtracted per channel, in the order of 'channels' (one value: all)")
    std: list[Annotated[float, Field(gt=0)]] | SkipJsonSchema[None] = Field(
        None, min_length=1, max_length=3, description="divided per channel after 'mean' (one value: all)")
    dtype: Literal["float32", "float16", "uint8"] | SkipJsonSchema[None] = Field(
        None, description="sample dtype; default: the model input's when it is one of these, else float32")

    @model_validator(mode="after")
    def _consistent(self) -> ImagesOptions:
        gray = self.channels == "gray" or self.layout == "NHW"
        if self.layout == "NHW" and self.channels not in (None, "gray"):
            raise ValueError(f"layout NHW has no channel axis; channels {self.channels!r} needs NCHW or NHWC")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and len(values) == 2:
                raise ValueError(f"{key}: give one value per channel (3) or one for all")
            if values is not None and gray and len(values) != 1:
                raise ValueError(f"{key}: grayscale images have one channel; give one value")
        if self.dtype == "uint8" and (self.scale == "0-1" or self.mean is not None or self.std is not None):
            raise ValueError("dtype uint8 keeps pixels in [0, 255]: it takes no scale 0-1, mean or std")
        if self.align_corners and (self.interpolation != "bilinear" or self.resize is not None):
            raise ValueError("align_corners resizes straight to 'size' by bilinear interpolation; it takes no 'resize' "
                             "and no other interpolation")
        if self.resize is not None and self.size is not None and self.resize < max(_pair(self.size)):
            raise ValueError(f"resize {self.resize} is smaller than size {list(_pair(self.size))}: the center crop "
                             "needs the shorter side at least as large")
        return self


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


@dataclass(frozen=True)
class ImagePrep:
    """The resolved preprocessing of the `images` source."""

    height: int
    width: int
    resize: int | None
    interpolation: str
    channels: str
    layout: str
    scale: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dtype: str
    align_corners: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        depth = 1 if self.channels == "gray" else 3
        return {"NCHW": (depth, self.height, self.width), "NHWC": (self.height, self.width, depth),
                "NHW": (self.height, self.width)}[self.layout]

    def describe(self) -> str:
        resize = (f", shorter side {self.resize} then center crop" if self.resize else
                  ", resized with aligned corners" if self.align_corners else "")
        return f"data source 'images' ({self.channels}, {self.height}x{self.width}{resize}, {self.layout})"


def _pinned(dims: list[Any]) -> list[int] | None:
    return dims if all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims) else None


def _model_layout(dims: list[int]) -> tuple[str, int | None, tuple[int, int] | None]:
    """Layout, channel count and [height, width] that a model input's sample dims suggest."""
    if len(dims) == 2:
        return "NHW", 1, (dims[0], dims[1])
    if len(dims) == 3 and dims[0] not in (1, 3) and dims[2] in (1, 3):
        return "NHWC", dims[2], (dims[0], dims[1])
    if len(dims) == 3:
        return "NCHW", dims[0], (dims[1], dims[2])
    return "NCHW", None, None


def resolve(opts: ImagesOptions, spec: Mapping[str, Any] | None) -> tuple[ImagePrep | None, list[str]]:
    """The preprocessing: the recipe's options, with what they leave out taken from the model's data-fed input."""
    dims = _pinned(sample_shape(spec)) if spec is not None else None
    layout, depth, hw = _model_layout(dims) if dims is not None else ("NCHW", None, None)
    if opts.layout is not None and opts.layout != layout:  # the recipe's layout decides where the model's dims are
        layout = opts.layout
        want = {"NCHW": 3, "NHWC": 3, "NHW": 2}[layout]
        if dims is not None and len(dims) == want:
            depth, hw = ((dims[0], (dims[1], dims[2])) if layout == "NCHW" else
                         (dims[2], (dims[0], dims[1])) if layout == "NHWC" else (1, (dims[0], dims[1])))
        else:
            depth, hw = None, None
    channels = opts.channels or ("gray" if layout == "NHW" or depth == 1 else "rgb")
    size = _pair(opts.size) if opts.size is not None else hw
    if size is None:
        return None, ["images: give 'size' ([height, width]): the model's input does not say its image size"
                      + (f" ({spec['name']!r} has shape {list(spec.get('shape') or [])})" if spec is not None else "")]
    if opts.resize is not None and opts.resize < max(size):
        return None, [f"resize {opts.resize} is smaller than the model's image size {list(size)}: the center crop "
                      "needs the shorter side at least as large"]
    if channels == "gray" and any(len(v or ()) > 1 for v in (opts.mean, opts.std)):
        return None, ["mean/std: the model takes one channel (grayscale); give one value each"]
    model_dtype = str(spec.get("dtype") or "float32") if spec is not None else "float32"
    dtype = opts.dtype or (model_dtype if model_dtype in DTYPES else "float32")
    scale = opts.scale or ("0-255" if dtype == "uint8" else "0-1")
    if dtype == "uint8" and (scale == "0-1" or opts.mean is not None or opts.std is not None):
        return None, ["the model takes uint8 images, which keep pixels in [0, 255]: remove scale 0-1, mean and std, "
                      "or set dtype float32"]
    return ImagePrep(size[0], size[1], opts.resize, opts.interpolation, channels, layout, scale,
                     tuple(opts.mean or (0.0,)), tuple(opts.std or (1.0,)), dtype, opts.align_corners), []


def decode(path: Path, prep: ImagePrep) -> np.ndarray:
    """One image file as a sample of `prep.shape`."""
    from PIL import Image

    method = getattr(Image.Resampling, prep.interpolation.upper())
    with Image.open(path) as image:
        image = image.convert("L" if prep.channels == "gray" else "RGB")
    if prep.align_corners:
        pixels = np.asarray(image, dtype=np.float32).reshape(image.height, image.width, -1)
        if prep.scale == "0-1":
            pixels /= 255.0
        pixels = _aligned_resize(pixels, prep.height, prep.width)
    else:
        if prep.resize is not None:  # torchvision's Resize(n) + CenterCrop(size)
            width, height = image.size
            ratio = prep.resize / min(width, height)
            image = image.resize((max(prep.resize, int(width * ratio)), max(prep.resize, int(height * ratio))), method)
            left = round((image.width - prep.width) / 2.0)
            top = round((image.height - prep.height) / 2.0)
            image = image.crop((left, top, left + prep.width, top + prep.height))
        elif image.size != (prep.width, prep.height):
            image = image.resize((prep.width, prep.height), method)
        pixels = np.asarray(image, dtype=np.float32).reshape(prep.height, prep.width, -1)
        if prep.scale == "0-1":
            pixels /= 255.0
    if prep.channels == "bgr":
        pixels = pixels[..., ::-1]
    pixels = (pixels - np.asarray(prep.mean, dtype=np.float32)) / np.asarray(prep.std, dtype=np.float32)
    if prep.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    elif prep.layout == "NHW":
        pixels = pixels[..., 0]
    return np.ascontiguousarray(pixels.astype(prep.dtype))


def _aligned_resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """`[H, W, C]` float pixels resized to `[height, width, C]` by linear interpolation with the corner pixels of
    input and output aligned (output pixel i samples input position i * (H - 1) / (height - 1))."""
    if pixels.shape[:2] == (height, width):
        return pixels
    from scipy.ndimage import zoom

    factors = (height / pixels.shape[0], width / pixels.shape[1])
    return np.stack([zoom(pixels[..., c], factors, order=1, grid_mode=False) for c in range(pixels.shape[2])], axis=-1)


class Images(FolderProvider[ImagesOptions]):
    """Image folders (PNG, JPEG, BMP, ...): class subfolders label them, a flat folder calibrates; decoded on demand."""

    name = "images"
    kind = "images"
    extensions = IMAGE_EXTENSIONS
    libraries = ("pillow", "scikit-learn")

    def resolve(self, spec: Mapping[str, Any] | None) -> tuple[ImagePrep | None, list[str]]:
        return resolve(self.options, spec)

    def decode(self, path: Path, prep: ImagePrep) -> np.ndarray:
        return decode(path, prep)

    def record(self, prep: ImagePrep, input_name: str, labels: list[str] | None) -> dict[str, Any]:
        from shrink_data.records import image_record

        return image_record(prep, self.name, input_name, labels)

    def open_header(self, path: Path) -> None:
        from PIL import Image

        with Image.open(path):  # parses the header only
            pass
