"""Compiled-kernel cache with integrity checks: a corrupted cache never changes a number.

Two kinds of artefact live on disk:

* **generated source** (``pkd_<key>.py``, ``pkdode_<key>.py`` in the kernel cache directory): its
  first line records the cache key and the SHA-256 of the rest of the file.  A load reads the
  text, checks both and executes that very text (no ``.pyc``), so a truncated, edited or garbage
  file is detected and regenerated.
* **numba's cache files** (``<stem>.<function>-<line>.pyXY.nbi`` index and ``.nbc`` data) of every
  module whose functions are jitted with caching: a manifest ``<stem>.pkdesign-manifest.json``
  beside them records the SHA-256 of each file that numba wrote.  Before the first use of a
  module's kernels in a process, any file of that module that is absent from the manifest or
  differs from it is removed, so numba recompiles instead of loading it. After a compilation, the files of the
  module's functions that numba would never load again (written for an earlier state of the source file:
  removed, renamed or moved functions) are removed too, so an edited or upgraded package does not pile them up.

On any mismatch or read error the artefact is rebuilt, with one :class:`CacheWarning` naming the
path.  When the cache cannot be written (a regular file where the directory should be, no
permission, read-only) the source is compiled in memory and kernels are jitted without caching:
slower, never wrong.  Every write is atomic (temporary file + ``os.replace``), so Ctrl-C or a
crash leaves either the old file or the new one.  Processes that compile the same module at once
serialise on a lock file (``fcntl.flock``) where the platform has one.

This module imports nothing from the rest of pkdesign.
"""

from __future__ import annotations

import contextlib
import logging
import hashlib
import inspect
import json
import os
import pickle
import sys
import threading
import types
import warnings
from pathlib import Path

import numba
from numba.core.compiler import CompilerBase, DefaultPassBuilder

try:  # POSIX advisory locks; elsewhere processes only rely on atomic renames
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class CacheWarning(UserWarning):
    """The kernel cache was corrupted, stale or unwritable; it was rebuilt or bypassed."""


_LOCK = threading.RLock()
_WARNED: set = set()
_VERIFIED: set = set()
_HEADER = "# pkdesign generated module; key {key}; sha256 {digest}\n"


def warn_cache(path, why: str) -> None:
    """One warning per (path, reason) per process."""
    k = (str(path), why)
    if k in _WARNED:
        return
    _WARNED.add(k)
    warnings.warn(CacheWarning(f"kernel cache {path}: {why}"), stacklevel=3)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half a file)."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sealed_source(key: str, body: str) -> str:
    """``body`` with the integrity header (key and SHA-256 of the body) as its first line."""
    return _HEADER.format(key=key, digest=_digest(body.encode("utf-8"))) + body


def unseal_source(data: bytes, key: str) -> str | None:
    """The body of a sealed source file, or None if its header, key or digest do not match."""
    head, sep, rest = data.partition(b"\n")
    if not sep:
        return None
    try:
        head_text = head.decode("ascii") + "\n"
    except UnicodeDecodeError:
        return None
    if head_text != _HEADER.format(key=key, digest=_digest(rest)):
        return None
    try:
        return rest.decode("utf-8")
    except UnicodeDecodeError:  # pragma: no cover - the digest matched text we wrote
        return None


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive advisory lock on ``path`` (created if needed); a no-op when it cannot be taken."""
    fh = None
    if fcntl is not None:
        try:
            fh = open(path, "a+b")
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except OSError:
            if fh is not None:
                fh.close()
            fh = None
    try:
        yield
    finally:
        if fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


class GeneratedModule:
    """A module executed from verified generated source.

    ``module`` is the Python module; ``path`` the cache file it came from (None when compiled in
    memory because the cache could not be written); ``source`` its text; ``generated`` whether
    this process had to call ``make_source``.
    """

    def __init__(self, module, path, source, generated):
        self.module, self.path, self.source, self.generated = module, path, source, generated

    @property
    def cached(self) -> bool:
        return self.path is not None


def load_module(directory: Path, key: str, prefix: str, make_source) -> GeneratedModule:
    """Execute the generated module ``{prefix}_{key}`` from ``directory``, verified.

    The file is written with ``make_source()`` (text without the header) when absent, when its
    header or digest do not match, or when it cannot be read; if it cannot be written, the source
    is executed in memory (``path`` None) after one warning."""
    modname = f"pkdesign_{prefix}_{key}"
    path = directory / f"{prefix}_{key}.py"
    body = None
    generated = False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        writable_dir = True
    except OSError as exc:
        warn_cache(directory, f"cannot create the cache directory ({exc.strerror or exc}); compiling in memory")
        writable_dir = False
    if writable_dir:
        with file_lock(directory / f"{prefix}_{key}.lock"):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            except OSError as exc:
                warn_cache(path, f"cannot read ({exc.strerror or exc}); regenerating")
                data = None
            if data is not None:
                body = unseal_source(data, key)
                if body is None:
                    warn_cache(path, "the generated source does not match its checksum (corrupted or edited); "
                                     "regenerating")
            if body is None:
                body = make_source()
                generated = True
                try:
                    atomic_write(path, sealed_source(key, body).encode("utf-8"))
                except OSError as exc:
                    warn_cache(path, f"cannot write ({exc.strerror or exc}); compiling in memory without a cache")
                    path = None
    else:
        path = None
    if body is None:
        body = make_source()
        generated = True
    module = types.ModuleType(modname)
    module.__file__ = str(path) if path is not None else f"<pkdesign {prefix}_{key}>"
    # the line numbers of the executed code are those of the file (the header is line 1)
    code = compile("\n" + body, module.__file__, "exec", dont_inherit=True)
    sys.modules[modname] = module
    exec(code, module.__dict__)  # noqa: S102 - our own generated code, verified against its digest
    return GeneratedModule(module, path, body, generated)


# ---------------------------------------------------------------------------------------------
# numba's cache files
# ---------------------------------------------------------------------------------------------
_MANIFEST = ".pkdesign-manifest.json"


def _cache_location(disp):
    """(cache directory, file stem) of a dispatcher compiled with cache=True, or None."""
    cache = getattr(disp, "_cache", None)
    impl = getattr(cache, "_impl", None)
    path = getattr(cache, "_cache_path", None)
    if impl is None or path is None:
        return None
    stem = impl.filename_base.split(".", 1)[0]
    return Path(path), stem


def _freshness(disp):
    """(source stamp, numba version) that numba writes into this dispatcher's cache index, or None."""
    cache_file = getattr(getattr(disp, "_cache", None), "_cache_file", None)
    try:
        return cache_file._source_stamp, cache_file._version
    except AttributeError:  # pragma: no cover - numba internals changed
        return None


def _index_exists(disp) -> bool:
    """Whether numba has a cache index for this function (if not, the next compile is a real one)."""
    cache = getattr(disp, "_cache", None)
    index = getattr(getattr(getattr(cache, "_impl", None), "_cache_file", None), "_index_path", None)
    if cache is None or index is None:
        return False
    return os.path.exists(index)


#: labels already announced in this process
_ANNOUNCED = set()


def announce_compile(label: str) -> None:
    """Log (logger ``pkdesign``, level INFO) once per label and process that kernels are being compiled;
    the CLI shows it on a terminal's stderr.  Compiling takes seconds; later runs load the cache."""
    if label in _ANNOUNCED:
        return
    _ANNOUNCED.add(label)
    logging.getLogger("pkdesign").info("compiling %s (first use; cached for later runs) ...", label)


def _cache_files(directory: Path, stem: str) -> list:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(stem + ".") and (n.endswith(".nbi") or n.endswith(".nbc")))


def _function_of(name: str) -> str:
    """The function part of a numba cache file name: ``<stem>.<qualname>-<line>`` (index ``.pyXY.nbi``,
    data ``.pyXY.<n>.nbc``)."""
    return name.rsplit(".", 2)[0] if name.endswith(".nbi") else name.rsplit(".", 3)[0]


def _read_manifest(directory: Path, stem: str) -> dict:
    try:
        data = json.loads((directory / (stem + _MANIFEST)).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _hash_file(path: Path) -> str | None:
    try:
        return _digest(path.read_bytes())
    except OSError:
        return None


def verify_numba_cache(directory: Path, stem: str) -> bool:
    """Remove the numba cache files of module ``stem`` that the manifest does not vouch for.

    Returns False when a bad file could not be removed (the caller must then jit without a cache)."""
    manifest = _read_manifest(directory, stem)
    ok = True
    bad = [n for n in _cache_files(directory, stem) if manifest.get(n) != _hash_file(directory / n)]
    if not bad:
        return True
    # a function's index and data go together: drop every file of a function with a bad file
    funcs = {_function_of(n) for n in bad}
    known = [n for n in bad if n in manifest]
    if known:
        warn_cache(directory / known[0], "numba cache file does not match its checksum (corrupted); recompiling")
    for n in _cache_files(directory, stem):
        if _function_of(n) in funcs:
            try:
                (directory / n).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                warn_cache(directory / n, f"cannot remove an unverified cache file ({exc.strerror or exc}); "
                                          "compiling without the cache")
                ok = False
    return ok


def prune_stale_numba_files(directory: Path, stem: str, stamp, version: str) -> None:
    """Remove the numba cache files of module ``stem`` that numba would never load again: those of a function whose
    index was written by this numba ``version`` for another state of the source file (numba's freshness ``stamp``:
    a digest of the file).  numba overwrites such an index only when the same function (name and line) is compiled
    again, so the files of a function that was removed, renamed or moved (an edited or upgraded package, a
    regenerated model) stayed forever.  Files of another Python or numba version and an index that cannot be read
    are left alone.  (A process still running an older version of the file removes the newer files when it
    compiles: the next process recompiles them, never loads anything stale.)  Called under the module's lock,
    after a compilation."""
    tag = f".py{sys.version_info[0]}{sys.version_info[1]}."
    names = [n for n in _cache_files(directory, stem) if tag in n]
    for index in (n for n in names if n.endswith(".nbi")):
        try:
            with open(directory / index, "rb") as fh:
                if pickle.load(fh) != version:
                    continue
                old_stamp = pickle.loads(fh.read())[0]
        except Exception:  # noqa: BLE001 - unreadable: verification deals with damaged files
            continue
        if old_stamp == stamp:
            continue
        func = _function_of(index)
        for n in names:
            if _function_of(n) == func:
                with contextlib.suppress(OSError):
                    (directory / n).unlink()


def record_numba_cache(directory: Path, stem: str) -> None:
    """Write the manifest of the numba cache files of module ``stem`` as they are now."""
    files = {n: h for n in _cache_files(directory, stem) if (h := _hash_file(directory / n)) is not None}
    data = json.dumps({"module": stem, "numba": numba.__version__, "files": files}, indent=0).encode("utf-8")
    try:
        atomic_write(directory / (stem + _MANIFEST), data)
    except OSError:
        pass  # unverifiable files are removed at the next start: a recompile, never a wrong number


def _light_refresh(ctx) -> None:
    """What loading cached machine code needs of numba's CPU target: its runtime (NRT), whose symbols the code
    links against.  numba's own ``refresh`` also imports and registers the implementations of every Python and
    NumPy operation (~0.4 s), which only compiling needs."""
    from numba.core.runtime import rtsys

    rtsys.initialize(ctx)


def fast_cache_loads(disp) -> None:
    """Make ``disp`` load its cached overloads without initialising numba's whole compiler first.

    numba's ``load_overload`` starts with ``target_context.refresh()`` (the typing and lowering registries of
    all of numba: ~0.4 s, the largest part of a warm command's start-up).  Loading needs only the runtime, so
    while (and only while) one of this dispatcher's overloads is read from the cache, the context's ``refresh``
    is the light one.  numba holds its global compiler lock around the load, so no compilation can run
    meanwhile; any compilation later in the process calls the full ``refresh`` itself.  If a light load fails
    for any reason, it is repeated after the full refresh (a failed load is never a result).  A numba without
    these internals is left as it is."""
    cache = getattr(disp, "_cache", None)
    load = getattr(cache, "load_overload", None)
    if load is None or not hasattr(getattr(disp, "targetctx", None), "refresh"):
        return  # pragma: no cover - numba internals changed

    def load_overload(sig, target_context):
        target_context.refresh = types.MethodType(_light_refresh, target_context)
        try:
            return load(sig, target_context)
        except Exception:
            del target_context.refresh
            return load(sig, target_context)
        finally:
            target_context.__dict__.pop("refresh", None)

    cache.load_overload = load_overload


class CachedJit:
    """Integrity guard for the numba cache of one module's jitted functions.

    ``jit(py_func, signature=None, **options)`` returns a dispatcher; the first time this process
    uses the cache of the module (``prepare()``), unverified files are removed; after each compile
    (``record()``) the manifest is rewritten.  With ``enabled=False`` (in-memory modules) or when
    numba finds no cache location, functions are jitted without a cache."""

    def __init__(self, enabled: bool = True, label: str | None = None):
        self.enabled = enabled
        self.location = None
        self.label = label
        self._freshness = None  # (stamp, numba version) of the module's source file, as numba's cache index has it

    def jit(self, py_func, signature=None, **options):
        disp = None
        if self.enabled:
            try:
                disp = numba.njit(cache=True, **options)(py_func)
            except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
                warn_cache(getattr(py_func, "__module__", "?"), f"numba cannot cache ({exc}); compiling in memory")
                self.enabled = False
            else:
                fast_cache_loads(disp)
                loc = _cache_location(disp)
                if loc is None:  # pragma: no cover - numba internals changed
                    self.enabled = False
                    disp = None
                elif self.location is None:
                    self.location = loc
                    self._freshness = _freshness(disp)
                    self.prepare()
                    if not self.enabled:
                        disp = None
        if disp is None:
            disp = numba.njit(cache=False, **options)(py_func)
        if signature is not None:
            with self.locked():
                if not _index_exists(disp):
                    announce_compile(self.label or getattr(py_func, "__module__", "kernels"))
                with fast_typing():
                    disp.compile(signature)
                self.record()
            disp.disable_compile()
        return disp

    def locked(self):
        if not self.enabled or self.location is None:
            return contextlib.nullcontext()
        directory, stem = self.location
        return _locked(directory, stem)

    def prepare(self) -> None:
        """Verify this module's cache files once per process."""
        if not self.enabled or self.location is None:
            return
        directory, stem = self.location
        with _LOCK:
            if (directory, stem) in _VERIFIED:
                return
            with _locked(directory, stem):
                if not verify_numba_cache(directory, stem):
                    self.enabled = False
            _VERIFIED.add((directory, stem))

    def record(self) -> None:
        """After a compilation: drop the module's files numba would never load again, then rewrite the manifest."""
        if self.enabled and self.location is not None:
            if self._freshness is not None:
                prune_stale_numba_files(*self.location, *self._freshness)
            record_numba_cache(*self.location)


@contextlib.contextmanager
def _locked(directory: Path, stem: str):
    with _LOCK:
        if os.access(directory, os.W_OK):
            with file_lock(directory / f"{stem}.pkdesign-lock"):
                yield
        else:
            yield


class GuardedKernel:
    """A lazily-typed cached dispatcher whose cache files are verified before its first call and
    recorded after each new compilation (used for the package's own kernels)."""

    def __init__(self, guard: CachedJit, disp):
        self.guard, self.disp = guard, disp
        self._n = -1

    def __call__(self, *args):
        if self._n == len(self.disp.overloads):
            return self.disp(*args)
        with self.guard.locked(), fast_typing():
            self._load(args)
            out = self.disp(*args)
            if self._n != len(self.disp.overloads):
                self.guard.record()
                self._n = len(self.disp.overloads)
        return out

    def _load(self, args) -> None:
        """Load (or compile) the overload for ``args`` through ``Dispatcher.compile``: a cache hit then skips
        numba's lazy-typing entry point, which first scans every installed package's entry points for numba
        extensions (~0.04 s; a compilation still does it, in numba's full refresh).  Any failure here is left to
        the ordinary call, which gives numba's own message."""
        try:
            sig = tuple(self.disp.typeof_pyval(a) for a in args)
            if sig not in self.disp.overloads:
                self.disp.compile(sig)
        except Exception:
            pass


def rebind(py_func, name: str, namespace: dict | None = None, filename: str | None = None):
    """A copy of ``py_func`` named ``name``, optionally resolving its globals in ``namespace`` and
    attributed to ``filename`` (numba puts a function's cache files beside its file, named after it)."""
    changes = {"co_name": name, "co_qualname": name}
    if filename is not None:
        changes["co_filename"] = filename
    code = py_func.__code__.replace(**changes)
    glb = py_func.__globals__ if namespace is None else namespace
    f = types.FunctionType(code, glb, name, py_func.__defaults__, py_func.__closure__)
    f.__qualname__ = name
    f.__module__ = glb.get("__name__", py_func.__module__)
    f.__doc__ = py_func.__doc__
    return f


# ---------------------------------------------------------------------------------------------
# faster typing during pkdesign's compilations
# ---------------------------------------------------------------------------------------------
_CALL_TYPES: dict = {}  # (typing context, function type, argument types) -> ("ok", signature) | ("error", message)
_FAST_TYPING = 0  # > 0 while pkdesign compiles (see fast_typing)
_ORIGINAL_GET_CALL_TYPE = None


def _plain(t) -> bool:
    """Argument types whose typing depends on nothing but themselves: numbers, booleans, constants of them, arrays of
    them and tuples of those."""
    if isinstance(t, (numba.types.Number, numba.types.Boolean)):
        return True
    if isinstance(t, numba.types.Omitted):
        return isinstance(t.value, (bool, int, float))
    if isinstance(t, numba.types.Array):
        return isinstance(t.dtype, (numba.types.Number, numba.types.Boolean))
    if isinstance(t, (numba.types.UniTuple, numba.types.Tuple)):
        return all(_plain(x) for x in t.types)
    return False


def _memoised_get_call_type(self, context, args, kws):
    """numba's ``BaseFunction.get_call_type`` (overload resolution of a builtin such as ``+`` or ``a[i, j]``),
    remembered per (context, function, argument types) while pkdesign compiles.  numba resolves every operation of a
    kernel afresh, trying each template in turn (numpy's array-operator templates first reject scalars by matching
    ufunc loops, and every rejection formats an error message), and again while lowering: half of the compile time
    of a generated kernel.  The result depends only on these types, so the first answer is the answer (the
    template's implementation key stays recorded on the interned function type, which the memo keeps alive)."""
    if not _FAST_TYPING or kws or not all(_plain(a) for a in args):
        return _ORIGINAL_GET_CALL_TYPE(self, context, args, kws)
    key = (context, self, tuple(args))  # (the context itself: kept alive, so its id is never reused)
    hit = _CALL_TYPES.get(key)
    if hit is None:
        try:
            sig = _ORIGINAL_GET_CALL_TYPE(self, context, args, kws)
        except numba.core.errors.TypingError as exc:
            _CALL_TYPES[key] = ("error", str(exc))
            raise
        _CALL_TYPES[key] = ("ok", sig)
        return sig
    if hit[0] == "ok":
        return hit[1]
    raise numba.core.errors.TypingError(hit[1], highlighting=False)  # (numba's highlighting: ~30 µs per error)


_LITERALS: dict = {}  # (type, value) of a constant operand -> numba's Literal or Omitted type of it
_ORIGINAL_LIT_OR_OMITTED = None


def _memoised_lit_or_omitted(value):
    """numba's ``lowering._lit_or_omitted`` (the type of a constant operand while lowering an operation), remembered
    while pkdesign compiles: for a float numba first builds, highlights and discards a "not a literal" error (~50 µs,
    tens of thousands of times in a generated kernel)."""
    if not _FAST_TYPING:
        return _ORIGINAL_LIT_OR_OMITTED(value)
    try:
        key = (type(value), value)
        hit = _LITERALS.get(key)
    except TypeError:  # unhashable
        return _ORIGINAL_LIT_OR_OMITTED(value)
    if hit is None:
        hit = _LITERALS[key] = _ORIGINAL_LIT_OR_OMITTED(value)
    return hit


_ORIGINAL_RESOLVE_VALUE_TYPE = None
_BUILTIN = type(len)  # builtin_function_or_method: operator.mul, math.exp, ...


def _registered_builtin_type(self, val):
    """numba's ``BaseContext.resolve_value_type`` (the type of a global the code uses), for a builtin function such as
    ``operator.mul`` or ``math.exp`` straight from the registry of globals while pkdesign compiles.  numba first tries
    ``typeof``, which always fails for a builtin function (``typeof`` has no rule for its type) after formatting a
    highlighted error message, and only then looks in the registry: once per operation of a kernel while typing and
    again while lowering (~25,000 times for three_comp_oral's order-2 kernel).  Anything the registry does not
    answer goes through numba's own path (and its error)."""
    if _FAST_TYPING and type(val) is _BUILTIN:
        ty = self._get_global_type(val)
        if ty is not None:
            return ty
    return _ORIGINAL_RESOLVE_VALUE_TYPE(self, val)


def _parameters(fn) -> list | None:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def _install(original, owner, name: str, parameters: list, replacement, also: bool = True):
    """``owner.name`` replaced by ``replacement`` once (``original`` is None until then), and only when its
    parameters are ``parameters`` (the numba internals these memos were written against) and ``also`` holds;
    returns what the replacement calls: the original, or None (another numba: not installed)."""
    if original is None and also and _parameters(getattr(owner, name, None)) == parameters:
        original = getattr(owner, name)
        setattr(owner, name, replacement)
    return original


@contextlib.contextmanager
def fast_typing():
    """Within: numba remembers the overload resolution of operations on numbers and arrays of numbers
    (:func:`_memoised_get_call_type`) and the types of constant operands (:func:`_memoised_lit_or_omitted`), and
    finds builtin functions in its registry without first failing ``typeof`` (:func:`_registered_builtin_type`): the
    same machine code, compiled ~45% faster (three_comp_oral's order-2 kernel 9.7-10.7 -> 5.3-5.7 s with the first
    two, 4.71-4.76 -> 4.33-4.39 s with the third; bit-identical results).  Used around pkdesign's own compilations only; other
    numba users in the process are unaffected outside them."""
    global _FAST_TYPING, _ORIGINAL_GET_CALL_TYPE, _ORIGINAL_LIT_OR_OMITTED, _ORIGINAL_RESOLVE_VALUE_TYPE
    from numba.core import lowering
    from numba.core.types.functions import BaseFunction
    from numba.core.typing.context import BaseContext

    with _LOCK:
        # installed once, and only over the numba internals this was written against (another numba: no memo, the
        # same kernels compiled at numba's own speed)
        _ORIGINAL_GET_CALL_TYPE = _install(_ORIGINAL_GET_CALL_TYPE, BaseFunction, "get_call_type",
                                           ["self", "context", "args", "kws"], _memoised_get_call_type)
        _ORIGINAL_LIT_OR_OMITTED = _install(_ORIGINAL_LIT_OR_OMITTED, lowering, "_lit_or_omitted", ["value"],
                                            _memoised_lit_or_omitted)
        _ORIGINAL_RESOLVE_VALUE_TYPE = _install(
            _ORIGINAL_RESOLVE_VALUE_TYPE, BaseContext, "resolve_value_type", ["self", "val"], _registered_builtin_type,
            also=_parameters(getattr(BaseContext, "_get_global_type", None)) == ["self", "gv"])
        _FAST_TYPING += 1
    try:
        yield
    finally:
        with _LOCK:
            _FAST_TYPING -= 1


class NoAliasCompiler(CompilerBase):
    """numba's nopython pipeline with the array arguments declared ``noalias`` (as numba declares them for the body
    of a ``prange`` loop), passed as ``pipeline_class``: for kernels none of whose arguments overlaps another that
    the kernel writes.  LLVM may then keep values in registers across stores and vectorise more (the FO FIM kernel:
    ~8% faster per row)."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return [DefaultPassBuilder.define_nopython_pipeline(self.state)]
