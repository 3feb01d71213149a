"""Ablation studies: study files, trials, seed-paired statistics, reports and findings."""
