"""Placeholder: verbs of this group are being written."""


def register(verbs) -> None:
    pass
