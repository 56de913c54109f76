"""Benchmarks and experiments of the three methods, outside the method packages.

They supply what the libraries leave to their users: the embedded real models and corpora, the clone-detection
study (:mod:`benchmarks.clone_detection`, :mod:`benchmarks.alpine_finetune`), the XTC teacher
(:mod:`benchmarks.xtc_teacher`) and line-completion evaluation (:mod:`benchmarks.xtc_eval`), the speed and quality
benchmarks (:mod:`benchmarks.alpine_speed`, :mod:`benchmarks.flab_bench`, :mod:`benchmarks.xtc_bench`), and the
README table renderer (:mod:`benchmarks.render_results`). Their JSON results live in ``benchmarks/results/``.

Dependency rule: the zoo imports benchmarks and methods; benchmarks import methods and the core
(:mod:`compress_utils`); methods import only the core, never each other, never the benchmarks or the zoo.

Run them with ``python -m benchmarks --help`` (the Makefile's ``bench-*``, ``finetune`` and ``results`` targets).
"""

__all__: list[str] = []
