"""Measurements of the method: the speed benchmark (``hogwild bench``) and the accuracy evaluation
(``hogwild eval``), their results files, statistics, reports and plots, and where the numbers come from."""
