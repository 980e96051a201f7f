from lookalike.cli import app

app()
