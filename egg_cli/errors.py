"""User-facing errors: one line that names what was wrong and what was expected."""


class EggError(Exception):
    """Bad input from the user (file, field, shape, value, override).

    The CLI prints ``egg: error: <message>`` on one line and exits with code 2;
    the message should name the file or config key, the problem and what was expected.
    """


def require(condition: bool, message: str) -> None:
    """Raise :class:`EggError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise EggError(message)
