"""The scene simulator: realistic SIMULATED imagery with exact ground truth.

Stands beside the pipeline (which never imports it): training chips
(:mod:`~railwatch.simulate.chips`), whole-site scenes from scenarios
(:mod:`~railwatch.simulate.scenario`, :mod:`~railwatch.simulate.scene`,
:mod:`~railwatch.simulate.export`). See docs/simulator.md.
"""
