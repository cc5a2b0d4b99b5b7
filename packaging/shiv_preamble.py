"""shiv preamble, run after the bootstrap (first extraction, or any start with a SHIV_* override) and before
the CLI. shiv runs it with runpy and the globals `archive`, `env` and `site_packages`."""

from kubectl_debugx.shell._shiv import after_bootstrap

after_bootstrap(globals()["site_packages"])
