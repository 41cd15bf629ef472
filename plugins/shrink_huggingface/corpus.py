"""An offline English corpus from prose shipped with Python and installed packages (no torch, no network).

Training sources (`TRAIN_SOURCES`): the standard library's docstrings (`stdlib`), the language
reference shipped as `pydoc_data.topics` (`reference`), docstrings of installed distributions' Python
modules (`site-packages`, at most `SITE_CAP` sentences per distribution so no one package dominates),
the comments of the standard library's and those distributions' code (`comments`: whole-line `#`
comments joined into paragraphs; the informal first- and second-person voice docstrings lack, capped
the same way), short requests, questions and remarks generated from templates over a vocabulary
(`templates`, seeded) and the English dialogues of the `chatterbot-corpus` wheel (`conversations`:
everyday questions and answers on food, health, money, films, sports, greetings, ...).
Held-out `eval` sentences come from *different* sources: the package descriptions (METADATA) of
installed distributions and a fixed list of short spoken-style requests (`requests.txt`), so a student
is judged on text it never saw. No training source reads METADATA or `requests.txt`, and the dataset
also drops any training sentence that equals a held-out one (case-insensitive).
Everything is sorted and seeded: the same Python and packages give the same sentences.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sysconfig
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path

MIN_WORDS, MAX_WORDS = 5, 60
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# code, markup, paths and URLs: anything with these is not a natural-language sentence
_NOT_PROSE = re.compile(r"[_=<>{}\[\]|\\#@$%^*~`/]|\(\)|::|>>>|\.\.\.|https?:|\w\.\w+\(|--|\s-\s")
_EXCLUDED_DIRS = {"site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__", "turtledemo"}
_SITE_EXCLUDED = {"test", "tests", "testing", "_vendor", "vendor", "__pycache__"}
SITE_CAP = 600
TEMPLATE_COUNT = 4000
TRAIN_SOURCES = ("stdlib", "reference", "site-packages", "comments", "templates", "conversations")
CONVERSATIONS_MIN_WORDS = 2
CONVERSATIONS_INSTALL = "pip install chatterbot-corpus"
REQUESTS_FILE = Path(__file__).with_name("requests.txt")


def sentences(text: str) -> list[str]:
    """Natural-language sentences of `text`: split at sentence ends, 5–60 words, mostly letters."""
    found = []
    for paragraph in _PARAGRAPH.split(text):
        flat = " ".join(paragraph.split())
        for sentence in _SENTENCE.split(flat):
            words = sentence.split()
            if not MIN_WORDS <= len(words) <= MAX_WORDS or _NOT_PROSE.search(sentence):
                continue
            if not sentence[0].isupper() or sentence[-1] not in ".?!":
                continue
            if sum(c.isalpha() or c == " " for c in sentence) < 0.9 * len(sentence):
                continue
            found.append(sentence)
    return found


def dedupe(items: list[str], exclude: set[str] | None = None) -> list[str]:
    """First occurrences only (case-insensitive), skipping anything in `exclude` (lower-cased)."""
    seen = set(exclude or ())
    out = []
    for item in items:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not _EXCLUDED_DIRS & set(p.relative_to(root).parts))


def docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return []
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [doc for node in ast.walk(tree) if isinstance(node, nodes) and (doc := ast.get_docstring(node))]


def comments(path: Path) -> list[str]:
    """Whole-line `#` comments of a Python file, consecutive lines joined into one paragraph each."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, ValueError, OSError):
        return []
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        stripped = line.strip()
        body = stripped.lstrip("#").strip() if stripped.startswith("#") and not stripped.startswith("#!") else ""
        if body:
            current.append(body)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def installed() -> list[metadata.Distribution]:
    """Installed distributions sorted by name, each once: the first on `sys.path`, as `importlib.metadata` resolves
    a name. (`python -m shrink` from a source checkout also finds its `shrink.egg-info` through the working
    folder; counting it twice made the data's cache key depend on where the compile started.)"""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        found.setdefault((dist.metadata["Name"] or "").lower(), dist)
    return [found[name] for name in sorted(found)]


def distribution_texts() -> list[tuple[str, str]]:
    """(name, description) of every installed distribution, sorted by name."""
    texts = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""  # type: ignore[attr-defined]
        if name and body and name not in texts:
            texts[name] = str(body)
    return sorted(texts.items())


@lru_cache(maxsize=2)
def stdlib_sentences() -> tuple[str, ...]:
    found: list[str] = []
    for path in stdlib_files():
        for doc in docstrings(path):
            found += sentences(doc)
    return tuple(dedupe(found))


@lru_cache(maxsize=2)
def package_sentences() -> tuple[str, ...]:
    found: list[str] = []
    for _name, text in distribution_texts():
        found += sentences(text)
    return tuple(dedupe(found))


@lru_cache(maxsize=2)
def reference_sentences() -> tuple[str, ...]:
    """Sentences of the Python language reference shipped with the standard library (`pydoc_data.topics`)."""
    from pydoc_data.topics import topics

    found: list[str] = []
    for key in sorted(topics):
        found += sentences(topics[key])
    return tuple(dedupe(found))


def _per_distribution(reader: Callable[[Path], list[str]], cap: int) -> list[str]:
    """Sentences `reader` finds in installed distributions' modules (never their METADATA): per
    distribution, its .py files in sorted order until `cap` sentences, test and vendored folders skipped."""
    found: list[str] = []
    for dist in installed():
        files = sorted(str(f) for f in (dist.files or []) if str(f).endswith(".py")
                       and not _SITE_EXCLUDED & set(Path(str(f)).parts))
        mine: list[str] = []
        for name in files:
            for text in reader(Path(str(dist.locate_file(name)))):
                mine += sentences(text)
            if len(mine) >= cap:
                break
        found += mine[:cap]
    return found


@lru_cache(maxsize=2)
def site_sentences(cap: int = SITE_CAP) -> tuple[str, ...]:
    """Docstring sentences of installed distributions' modules, at most `cap` per distribution."""
    return tuple(dedupe(_per_distribution(docstrings, cap)))


@lru_cache(maxsize=2)
def comment_sentences(cap: int = SITE_CAP) -> tuple[str, ...]:
    """Comment sentences of the standard library and of installed distributions (`cap` per distribution)."""
    found: list[str] = []
    for path in stdlib_files():
        for text in comments(path):
            found += sentences(text)
    return tuple(dedupe(found + _per_distribution(comments, cap)))


def template_sentences(count: int = TEMPLATE_COUNT, seed: int = 0) -> tuple[str, ...]:
    """`count` distinct short requests, questions and remarks from templates (templates.py), seeded."""
    from shrink_huggingface.templates import generate

    return tuple(generate(count, seed))


@lru_cache(maxsize=1)
def conversation_sentences() -> tuple[str, ...]:
    """The lines of the English dialogues shipped in the `chatterbot-corpus` wheel (its `data/english/*.yml`,
    sorted by file), whitespace-normalised, of at least `CONVERSATIONS_MIN_WORDS` words: short turns of
    conversation, unlike every other source here. Not the sentence filter of the prose sources: a turn such as
    "What is your favorite food?" is exactly the register they lack."""
    from importlib import resources

    import yaml

    try:
        root = resources.files("chatterbot_corpus") / "data" / "english"
    except ModuleNotFoundError:  # the plan refuses this first (TextData.check); here for direct callers
        from shrink import UsageError

        raise UsageError(f"train_sources 'conversations' needs the chatterbot-corpus package: {CONVERSATIONS_INSTALL}") from None
    found: list[str] = []
    for name in sorted(entry.name for entry in root.iterdir() if entry.name.endswith(".yml")):
        document = yaml.safe_load((root / name).read_text(encoding="utf-8")) or {}
        for dialogue in document.get("conversations") or []:
            found += [line for turn in dialogue if isinstance(turn, str)
                      if len((line := " ".join(turn.split())).split()) >= CONVERSATIONS_MIN_WORDS]
    return tuple(dedupe(found))


def train_sentences(source: str) -> tuple[str, ...]:
    """The sentences of one training source (one of `TRAIN_SOURCES`)."""
    readers = {"stdlib": stdlib_sentences, "reference": reference_sentences, "site-packages": site_sentences,
               "comments": comment_sentences, "templates": template_sentences, "conversations": conversation_sentences}
    return readers[source]()


def requests() -> list[str]:
    """The fixed held-out list of short spoken-style requests shipped with shrink."""
    return [line.strip() for line in REQUESTS_FILE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def read_file(path: Path) -> list[str]:
    """A user's sentences: one per line, blank lines and lines starting with '#' skipped."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def shuffled(items: list[str] | tuple[str, ...], seed: int) -> list[str]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


def source_digest() -> str:
    """A cheap digest of what the built-in corpus is made from: file names and sizes, package versions."""
    digest = hashlib.sha256()
    for path in stdlib_files():
        digest.update(f"{path.name}:{path.stat().st_size};".encode())
    for dist in installed():
        digest.update(f"{dist.metadata['Name']}=={dist.version};".encode())
    digest.update(REQUESTS_FILE.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(__file__).with_name("templates.py").read_bytes())
    return digest.hexdigest()
