"""One module per chapter, in the book's order: the chapter's ``CONFIGS`` per profile and its
experiment protocol.

A chapter module imports the method modules (``tlcourse.bow``, ``tlcourse.elmo``, ``tlcourse.mlm``,
...) and the plumbing (``tlcourse.data``, ``tlcourse.train``, ...), never another chapter's module:
what two chapters share lives in a method or plumbing module. ``tests/test_layout.py`` checks this
on the import graph.

>>> from tlcourse.chapters import ch01_transfer as ch   # doctest: +SKIP
>>> cfg = run.select(ch.CONFIGS)                        # doctest: +SKIP
"""
