"""The policy-quality benchmark (issue 7): every contender balances the same simulated guests;
`runner` drives one scenario, `metrics` turns what the guests experienced into figures,
`tables` and `plots` publish them. See docs/bench.md."""
