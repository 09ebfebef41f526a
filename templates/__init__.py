"""Report templates (Jinja); shipped inside the package as metarunlog.templates."""
