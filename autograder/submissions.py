"""The submissions of a batch: a folder of notebooks, a folder per student, or Gradescope's
"export submissions" zip (extracted safely: no ``..``, absolute paths or links, sizes capped)."""
from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .gradescope import JUNK_DIRS, SubmissionError, find_notebook
from .textsafe import escape_control


MAX_ZIP_MEMBERS = 50_000
MAX_ZIP_BYTES = 8 << 30
MAX_MEMBER_BYTES = 512 << 20
MAX_EXTRACT_DEPTH = 256  # folders; far past gradescope.MAX_DEPTH, which then names the problem
EXTRACTED_MARKER = ".dlgrade-extracted"


class BatchError(Exception):
    pass


@dataclass
class Submission:
    id: str                      # unique, safe as a folder name
    notebook: Path | None        # None: nothing to grade, ``problem`` says why
    problem: str = ""
    problem_kind: str = ""       # SubmissionError.kind ("no notebook", ...), the CSV's status
    submitters: list[dict] = field(default_factory=list)  # name, email, sid
    label: str = ""              # where it came from, for the CSV


# ---- reading the input ---------------------------------------------------------------------

def unsafe_reason(info: zipfile.ZipInfo) -> str:
    """Why a zip entry must not be extracted, or '' when it is safe."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if "\x00" in name or "\\" in name:
        return "invalid character in the name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' in the path"
    return ""


def _make_dirs(dest: Path, parts: list[str], made: set[str]) -> None:
    """``dest/parts...`` as folders, one level at a time: ``Path.mkdir(parents=True)`` recurses
    once per level, and an entry a thousand folders deep raised RecursionError. ``made``: the
    folders already made, relative to ``dest`` (each is made once, however many entries it
    holds)."""
    if not parts or "/".join(parts) in made:
        return
    current, rel = str(dest), ""
    for part in parts:
        current, rel = f"{current}/{part}", f"{rel}/{part}" if rel else part
        if rel in made:
            continue
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):  # a file of an earlier entry
                raise NotADirectoryError(f"{rel} is a file") from None
        made.add(rel)


def _shown(name: str, limit: int = 200) -> str:
    """A zip entry's name for the refused list: one line, no terminal escapes, and its two
    ends only when it is long (names can be thousands of characters)."""
    name = escape_control(name, single_line=True)
    return name if len(name) <= limit else f"{name[:limit // 2]}...{name[-limit // 2:]}"


def safe_extract(zip_path: Path, dest: Path) -> list[str]:
    """Extract ``zip_path`` into ``dest``; returns the refused entries with the reason.

    Entries with ``..``, absolute paths or symlinks are refused, not sanitised; sizes are
    capped while copying (a header's size can lie). An entry the file system cannot hold
    (a name or path too long, a file where a folder should be) is refused too.
    """
    refused, total = [], 0
    made: set[str] = set()
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise BatchError(f"{zip_path.name} has {len(infos)} entries "
                             f"(at most {MAX_ZIP_MEMBERS})")
        for info in infos:
            reason = unsafe_reason(info)
            if reason:
                refused.append(f"{_shown(info.filename)}: {reason}")
                continue
            parts = [p for p in info.filename.split("/") if p not in ("", ".")]
            if not parts:
                continue
            target = dest.joinpath(*parts)
            folders = parts if info.is_dir() else parts[:-1]
            try:
                if len(folders) > MAX_EXTRACT_DEPTH:
                    # Its first folders are made all the same: the submission then reads as
                    # "folder nested too deep" (find_notebook), not as one without a notebook.
                    _make_dirs(dest, folders[:MAX_EXTRACT_DEPTH], made)
                    refused.append(f"{_shown(info.filename)}: nested more than "
                                   f"{MAX_EXTRACT_DEPTH} folders deep")
                    continue
                _make_dirs(dest, folders, made)
                if info.is_dir():
                    continue
                # O_NOFOLLOW | O_EXCL: never write through a link, never overwrite an earlier
                # entry
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                refused.append(f"{_shown(info.filename)}: duplicate entry")
                continue
            except OSError as exc:
                refused.append(f"{_shown(info.filename)}: cannot be extracted here "
                               f"({exc.strerror or exc})")
                continue
            written = 0
            with zf.open(info) as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    total += len(chunk)
                    if written > MAX_MEMBER_BYTES or total > MAX_ZIP_BYTES:
                        raise BatchError(f"{zip_path.name}: {_shown(info.filename)} makes the "
                                         "archive too large to extract")
                    dst.write(chunk)
    return refused


def _load_yaml(path: Path):
    import yaml

    class Loader(yaml.SafeLoader):
        """Gradescope writes Ruby-tagged YAML; unknown tags load as plain data."""

    def plain(loader, _suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", plain)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - safe loader


def _get(mapping, key: str, default=None):
    """Gradescope's keys are Ruby symbols (``:submitters:``); accept plain keys too."""
    if not isinstance(mapping, dict):
        return default
    return mapping.get(f":{key}", mapping.get(key, default))


class _Ids:
    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, raw: str) -> str:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", raw).strip("._")[:80] or "submission"
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}-{n}"
        self.used.add(name)
        return name


def _with_notebook(sub_id: str, folder: Path, **kw) -> Submission:
    try:
        return Submission(sub_id, find_notebook(folder), **kw)
    except SubmissionError as exc:
        return Submission(sub_id, None, problem=str(exc), problem_kind=exc.kind, **kw)


def from_export(folder: Path) -> list[Submission]:
    """A Gradescope export: ``submission_metadata.yml`` and one folder per submission."""
    metadata = _load_yaml(folder / "submission_metadata.yml") or {}
    if not isinstance(metadata, dict):
        raise BatchError("submission_metadata.yml is not a mapping of submissions")
    ids, subs = _Ids(), []
    for key in sorted(metadata, key=str):
        people = []
        for person in _get(metadata[key], "submitters", []) or []:
            people.append({f: str(_get(person, f, "") or "") for f in ("name", "email", "sid")})
        sub_folder = folder / str(key)
        kw = dict(submitters=people, label=str(key))
        if sub_folder.is_dir() and not sub_folder.is_symlink():
            subs.append(_with_notebook(ids(str(key)), sub_folder, **kw))
        else:
            subs.append(Submission(ids(str(key)), None, problem="the export holds no files "
                                   "for this submission", problem_kind="no notebook", **kw))
    return subs


def from_folder(folder: Path) -> list[Submission]:
    """Each ``*.ipynb`` directly in ``folder`` is a student; so is each sub-folder."""
    ids, subs = _Ids(), []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in JUNK_DIRS or entry.is_symlink():
            continue
        if entry.is_file() and entry.suffix.lower() == ".ipynb":
            subs.append(Submission(ids(entry.stem), entry, label=entry.name))
        elif entry.is_dir():
            subs.append(_with_notebook(ids(entry.name), entry, label=entry.name + "/"))
    return subs


def _export_root(folder: Path) -> Path | None:
    if (folder / "submission_metadata.yml").is_file():
        return folder
    inner = [p for p in folder.iterdir() if p.is_dir() and p.name not in JUNK_DIRS
             and not p.name.startswith(".") and not p.is_symlink()]
    if len(inner) == 1 and (inner[0] / "submission_metadata.yml").is_file():
        return inner[0]
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remove_tree(root: Path) -> None:
    """``shutil.rmtree`` without recursion (it recurses once per level, and an extracted zip
    can nest a few hundred folders deep). Links are removed, never followed."""
    stack = [str(root)]
    while stack:
        top = stack[-1]
        subdirs = []
        with os.scandir(top) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                else:
                    os.unlink(entry.path)
        if subdirs:
            stack.extend(subdirs)  # ``top`` is looked at again once they are gone
        else:
            os.rmdir(top)
            stack.pop()


def discover(source: Path, out: Path) -> tuple[list[Submission], list[str]]:
    """The submissions in a folder or zip; a zip is extracted (once) under ``out/input``."""
    refused: list[str] = []
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise BatchError(f"{source} is neither a folder nor a zip file")
        dest, digest = out / "input", sha256_of(source)
        marker = dest / EXTRACTED_MARKER
        refused_file = out / "refused.txt"
        if not (marker.is_file() and marker.read_text() == digest):
            if dest.is_symlink():
                dest.unlink()
            elif dest.exists():
                remove_tree(dest)
            dest.mkdir(parents=True)
            refused = safe_extract(source, dest)
            refused_file.write_text("".join(f"{r}\n" for r in refused))
            marker.write_text(digest)
        elif refused_file.exists():
            refused = refused_file.read_text().splitlines()
        root = dest
    elif source.is_dir():
        root = source
    else:
        raise BatchError(f"{source} does not exist")
    export = _export_root(root)
    subs = from_export(export) if export else from_folder(root)
    if not subs:
        raise BatchError(f"no submissions found in {source}")
    return subs, refused


