# Flatness, once reached, never goes away as the zoom deepens. So probe frames 1, 2, 4, 8...
# until one is flat: the first flat frame lies between the last two probes. Then halve that
# interval at every probe until it is one frame wide (a binary search). Both phases take about
# log2(index) probes: some 25 renders instead of thousands.


def first_flat_frame(stack):
    """Return the index of the first frame of `stack` whose pixels are all equal."""

    def is_flat(index):
        frame = stack[index].compute()  # renders this one frame only
        return frame.min() == frame.max()

    if is_flat(0):
        return 0
    varying, probe = 0, 1
    while probe < len(stack) - 1 and not is_flat(probe):
        varying, probe = probe, 2 * probe
    flat = min(probe, len(stack) - 1)  # the stack ends flat, so its last frame is
    while flat - varying > 1:  # stack[varying] varies, stack[flat] is flat
        middle = (varying + flat) // 2
        if is_flat(middle):
            flat = middle
        else:
            varying = middle
    return flat
