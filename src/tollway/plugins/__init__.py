"""The built-in plugins (Higress's AI-gateway plugins, field for field), one module each;
the limit and quota plugins share their rule and reservation code in ``limits``.
``registry`` names them all."""
