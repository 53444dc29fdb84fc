"""Differential privacy (docs/design.md §5), pure: the plan of a query's noised cells, contribution bounding
passes, the cost preview, the noise (OpenDP measurements, invoked by a sampler passed in) and the budget
arithmetic. Nothing here draws randomness itself, reads a clock or does I/O.
"""
