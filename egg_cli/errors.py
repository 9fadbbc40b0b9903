"""User-facing errors: one line that names what was wrong and what was expected.

Every exception that escapes a command is either a user error (:class:`EggError`, or an error
of Hydra, OmegaConf or the file system that :func:`user_error` recognizes as bad input) or a bug.
"""

from __future__ import annotations

import errno


class EggError(Exception):
    """Bad input from the user (file, field, shape, value, override).

    The CLI prints ``egg: error: <message>`` on one line and exits with code 2;
    the message should name the file or config key, the problem and what was expected.
    """


def require(condition: bool, message: str) -> None:
    """Raise :class:`EggError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise EggError(message)


# errno of a file-system error about a path the user chose -> what was expected instead
_PATH_ERRNOS = {
    errno.ENOENT: "expected an existing path",
    errno.EACCES: "expected a path you may read and write",
    errno.EPERM: "expected a path you may read and write",
    errno.EROFS: "expected a writable file system",
    errno.EISDIR: "expected a file, not a folder",
    errno.ENOTDIR: "expected a folder, not a file",
    errno.EEXIST: "expected a path that does not exist yet",
    errno.ENAMETOOLONG: "expected a shorter path",
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
}

# messages of TypeErrors raised by a constructor called with config keys it does not take
_SIGNATURE_ERRORS = ("unexpected keyword argument", "required positional argument", "required keyword-only argument")


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def user_error(err: BaseException) -> EggError | None:
    """The user error behind ``err``, or None when ``err`` is a bug.

    Errors raised while Hydra instantiates a config node are unwrapped to their cause;
    OmegaConf errors (a missing mandatory value, a value of the wrong type, an unknown key)
    and file-system errors about a path become one line that names the key or the path.
    """
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    seen: set[int] = set()
    node = err
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, EggError):
            return node
        if isinstance(node, MissingMandatoryValue):
            key = node.full_key or node.key
            return EggError(f"{key}= is required (the config leaves it as ???); set {key}=<value> on the command line")
        if isinstance(node, OmegaConfBaseException):
            message = first_line(node.msg or str(node))
            return EggError(f"{node.full_key}: {message}" if node.full_key else message)
        if isinstance(node, OSError) and node.errno in _PATH_ERRNOS:
            where = node.filename if node.filename is not None else "a file"
            return EggError(f"{where}: {node.strerror or os_error_name(node)}; {_PATH_ERRNOS[node.errno]}")
        if isinstance(node, InstantiationException):
            cause = node.__cause__
            text = first_line(str(node))
            key = next((line[10:].strip() for line in str(node).splitlines() if line.startswith("full_key: ")), "config")
            if isinstance(cause, TypeError) and any(s in str(cause) for s in _SIGNATURE_ERRORS):
                return EggError(f"{key}: {first_line(str(cause))}; expected only the arguments that class takes")
            if text.startswith("Error locating target") or cause is None:
                return EggError(f"{key}: {text.split(', set env var')[0]}; expected an importable class")
            node = cause
            continue
        return None
    return None


def os_error_name(err: OSError) -> str:
    """The symbolic name of an OSError's errno (``ENOSPC``), or its class name."""
    return errno.errorcode.get(err.errno or 0, type(err).__name__)
