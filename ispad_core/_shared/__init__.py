"""What several rooms of the package share: validation, errors, files, progress, Numba flags and
cache, shared kernels, the version.

Private to the package: users import from the public rooms. Inside the package any room may
import from here, so the names in these modules carry no leading underscore.
"""
