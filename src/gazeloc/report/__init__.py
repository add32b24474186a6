"""Result tables, figures and report items."""
