"""How to cite odebench and the work whose methods and test sets it uses (BibTeX).

``CITATION.cff`` at the repository root lists the same references (a test keeps the two in
step). ``bibtex(version, commit)`` is the "Cite this" block of the report page.
"""

from __future__ import annotations

__all__ = ["REFERENCES", "REGENERATE_COMMAND", "bibtex", "odebench_bibtex"]

#: The one command that regenerates the committed report (see README.md).
REGENERATE_COMMAND = "rm -rf reports/data && nox -s bench -- --full"

#: (BibTeX key, entry) of each work odebench's methods, problems or checks come from.
REFERENCES: tuple[tuple[str, str], ...] = (
    ("chen2018neural", """@inproceedings{chen2018neural,
  author    = {Chen, Ricky T. Q. and Rubanova, Yulia and Bettencourt, Jesse and Duvenaud, David},
  title     = {Neural Ordinary Differential Equations},
  booktitle = {Advances in Neural Information Processing Systems 31 (NeurIPS 2018)},
  pages     = {6571--6583},
  year      = {2018}
}"""),
    ("hairer1993solving", """@book{hairer1993solving,
  author    = {Hairer, Ernst and N{\\o}rsett, Syvert P. and Wanner, Gerhard},
  title     = {Solving Ordinary Differential Equations {I}: Nonstiff Problems},
  edition   = {2},
  series    = {Springer Series in Computational Mathematics},
  volume    = {8},
  publisher = {Springer},
  year      = {1993}
}"""),
    ("hairer1996solving", """@book{hairer1996solving,
  author    = {Hairer, Ernst and Wanner, Gerhard},
  title     = {Solving Ordinary Differential Equations {II}: Stiff and
               Differential-Algebraic Problems},
  edition   = {2},
  series    = {Springer Series in Computational Mathematics},
  volume    = {14},
  publisher = {Springer},
  year      = {1996}
}"""),
    ("mazzia2008testset", """@techreport{mazzia2008testset,
  author      = {Mazzia, Francesca and Magherini, Cecilia},
  title       = {Test Set for Initial Value Problem Solvers, Release 2.4},
  institution = {Department of Mathematics, University of Bari and INdAM},
  year        = {2008},
  note        = {https://archimede.uniba.it/~testset/}
}"""),
    ("kidger2021hey", """@inproceedings{kidger2021hey,
  author    = {Kidger, Patrick and Chen, Ricky T. Q. and Lyons, Terry},
  title     = {``{Hey}, that's not an {ODE}'': Faster {ODE} Adjoints via Seminorms},
  booktitle = {Proceedings of the 38th International Conference on Machine Learning (ICML)},
  series    = {PMLR},
  volume    = {139},
  pages     = {5443--5452},
  year      = {2021}
}"""),
    ("rackauckas2017differentialequations", """@article{rackauckas2017differentialequations,
  author  = {Rackauckas, Christopher and Nie, Qing},
  title   = {{DifferentialEquations.jl} -- A Performant and Feature-Rich Ecosystem for
             Solving Differential Equations in {Julia}},
  journal = {Journal of Open Research Software},
  volume  = {5},
  number  = {1},
  pages   = {15},
  year    = {2017},
  doi     = {10.5334/jors.151}
}"""),
    ("zhuang2020adaptive", """@inproceedings{zhuang2020adaptive,
  author    = {Zhuang, Juntang and Dvornek, Nicha and Li, Xiaoxiao and Tatikonda, Sekhar and
               Papademetris, Xenophon and Duncan, James},
  title     = {Adaptive Checkpoint Adjoint Method for Gradient Estimation in Neural {ODE}},
  booktitle = {Proceedings of the 37th International Conference on Machine Learning (ICML)},
  series    = {PMLR},
  volume    = {119},
  pages     = {11639--11649},
  year      = {2020}
}"""),
)


def odebench_bibtex(version: str, commit: str, year: str) -> str:
    """The BibTeX entry of odebench itself at ``version`` and ``commit``, measured in ``year``."""
    return (
        "@software{odebench,\n"
        "  title   = {odebench: accuracy, speed and memory of solving and differentiating "
        "neural {ODEs}},\n"
        "  author  = {{odebench contributors}},\n"
        f"  version = {{{version}}},\n"
        f"  note    = {{commit {commit}}},\n"
        f"  year    = {{{year}}}\n"
        "}"
    )


def bibtex(version: str, commit: str, year: str) -> str:
    """odebench's entry, then every entry of ``REFERENCES``, separated by blank lines."""
    return "\n\n".join([odebench_bibtex(version, commit, year),
                        *(entry for _, entry in REFERENCES)])
