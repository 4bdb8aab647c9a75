"""Admin-side code: the CLI, validation, explain, publishing, migrations, packaging, local tools.

Nothing under this package is imported by the Lambda handler, so the bundle (the
handler's import closure, ``admin.packaging.runtime_modules``) leaves all of it out;
``bundle`` refuses to build if a runtime module ever imports from here.
"""
