"""One module per report domain: objectives, audit, risk, root cause, review."""
