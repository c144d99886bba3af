"""What runs a program description, knowing no op.

    program.py  the description: kernels, circular buffers, semaphores, DRAM tensors (dataclasses)
    emu.py      the emulator executor: run(program, tensors) on the host emulator (tt_specdec._emu)
    device.py   the card executor: run(program, tensors) through ttnn.generic_op (ttnn imported lazily)

Each executor also has aligned() (descriptions built inside fit it) and to_torch(output). The ops
(tt_specdec.ops.<op>/program.py) build descriptions and pick an executor; nothing here imports them.
"""
