# A function of one block: it receives a (1, Z, Y, X) volume and returns its (1, Y, X) maximum
# over Z. map_blocks applies it to every block, one time point each, and drop_axis=1 tells
# dask that the blocks lose their Z axis. Nothing is computed until a value is asked for.


def project_z(volume):
    return volume.max(axis=1)


def max_projection(stack):
    """Return the lazy maximum projection over Z of a (T, Z, Y, X) dask array."""
    return stack.map_blocks(project_z, drop_axis=1, dtype=stack.dtype)
