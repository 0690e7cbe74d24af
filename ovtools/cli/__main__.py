"""``python -m ovtools.cli``: the ``ovtools`` command."""

from . import main

main()
