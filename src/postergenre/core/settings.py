"""params.yaml's sections as typed settings (pydantic): one model a section, defaults equal to
params.yaml's (a test holds them equal), an unknown key or a value out of range an error with
its key path. The methods' own settings are in their modules (`postergenre.methods`)."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from postergenre.core.sizes import SizeError, parse_size

Source = Literal["synthetic", "tmdb", "movielens", "csv"]
PosterKey = Literal["poster_path", "imdb_id", "tmdb_id"]
# backbone.py's LITES names the same ones (a test holds them equal); listed here so that
# validating params never imports torch.
Backbone = Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
View = Literal["squash", "aspect", "top", "bottom", "flip"]
SOURCES, POSTER_KEYS = get_args(Source), get_args(PosterKey)
BACKBONES, VIEWS = get_args(Backbone), get_args(View)


def _size(text: str) -> str:
    try:
        parse_size(text)
    except SizeError as exc:
        raise ValueError(str(exc)) from None
    return text


def _each_once(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"each once, got {values!r}")
    return values


# WIDTHxHEIGHT, e.g. 100x150
Size = Annotated[str, AfterValidator(_size)]


class Settings(BaseModel):
    """Strict (a `true` where a number belongs is an error) and closed (an unknown key is one)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Synthetic(Settings):
    n: int = Field(2000, ge=1)
    width: int = Field(120, ge=1)
    height: int = Field(180, ge=1)
    noise: float = Field(0.5, ge=0)
    seed: int = 20190601  # the posters' own: the training's `seed` varies without them


class Data(Settings):
    source: Source = "synthetic"
    path: str = "data/raw/synthetic"
    posters: str = ""
    poster_key: PosterKey = "imdb_id"
    poster_ext: str = ".jpg"
    synthetic: Synthetic = Synthetic()


class Clean(Settings):
    min_genre_count: int = Field(10, ge=1)


class Resize(Settings):
    sizes: Annotated[list[Size], Field(min_length=1), AfterValidator(_each_once)] = [
        "64x64",
        "100x150",
        "224x224",
    ]
    workers: int = Field(0, ge=0)
    max_pixels: int = Field(50_000_000, ge=1)


class Embed(Settings):
    backbones: Annotated[list[Backbone], Field(min_length=1), AfterValidator(_each_once)] = [
        "efficientnet_lite0"
    ]
    views: Annotated[list[View], Field(min_length=1), AfterValidator(_each_once)] = ["squash"]
    pool: Literal["concat", "mean"] = "concat"
    size: Size = "224x224"
    batch_size: int = Field(4, ge=1)
    threads: int = Field(2, ge=1)


class Training(Settings):
    threads: int = Field(2, ge=1)


class Split(Settings):
    train: float = Field(0.8, gt=0, lt=1)
    dev: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, gt=0, lt=1)
    max_train: int = Field(0, ge=0)
    max_dev: int = Field(0, ge=0)
    max_test: int = Field(0, ge=0)
    seed: int = 20190601  # the split's own: the training's `seed` varies with the split held fixed

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        if abs(self.train + self.dev + self.test - 1.0) > 1e-6:
            raise ValueError(f"train + dev + test must sum to 1, got {self.train} + {self.dev} + {self.test}")
        return self


# Types the methods' settings share.
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]  # a dropout rate
Share = Annotated[float, Field(ge=0, le=1)]


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at `loc` inside `model`."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        kind = getattr(field, "annotation", None)
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            return []
        model = kind
    return sorted(model.model_fields)


def describe(exc: ValidationError, model: type[BaseModel], where: str = "") -> str:
    """A validation's first error as one line naming the key's path (`where` before it)."""
    error = exc.errors()[0]
    loc = tuple(p for p in error["loc"] if isinstance(p, str))
    path = ".".join(p for p in (where, *loc) if p)
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_fields_at(model, loc[:-1]))
        return f"unknown key '{path}' in params; allowed here: {allowed}"
    if error["type"] == "missing":
        parent = ".".join(p for p in (where, *loc[:-1]) if p) or "params"
        return f"{parent}: missing key {loc[-1]}"
    msg = (
        error["msg"]
        .removeprefix("Value error, ")
        .replace("Input should be", "must be")
        .replace("List should have", "must list")
        .removesuffix(" after validation, not 0")
    )
    if error["type"].endswith("_type") or error["type"] in (
        "literal_error",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "too_short",
    ):
        return f"'{path}' {msg}, got {error.get('input')!r}"
    return f"'{path}': {msg}"
