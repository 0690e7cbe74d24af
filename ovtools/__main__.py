"""``python -m ovtools``: the ``ovtools`` command."""

from .cli import main

main()
