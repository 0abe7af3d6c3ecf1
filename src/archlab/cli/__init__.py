"""Command-line entry points: thin, they parse, call the layers below, and turn a user's
mistake into one `archlab-...: error:` line. Nothing inside archlab imports them."""
