"""Analysis: tables, statistics, sweeps, timing and external evaluation of trained models."""
