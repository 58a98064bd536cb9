"""The Kermany real-data study: a script on synthgate's public API, outside the package.

Run it as ``python studies/kermany/study.py`` (see docs/real-data-study.md). With
``studies/`` on ``sys.path`` its modules import as the package ``kermany``:
``kermany.study`` (the study file and the command line), ``kermany.build`` (splitting
the data by patient and deriving the releases), ``kermany.gating`` (gating each
release in a subprocess), ``kermany.tables`` (results.md and the learning curve) and
``kermany.measure_hook`` (the pytest plugin the gate runs with, ``-p kermany.measure_hook``).
"""
