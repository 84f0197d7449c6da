"""Interoperability: NONMEM control streams in (``nonmem``, optional pharmpy), datasets out (``pkdesign.dataset``)."""
