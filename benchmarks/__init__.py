"""Load and quality benchmarks; see RESULTS.md for figures and the commands behind them."""
