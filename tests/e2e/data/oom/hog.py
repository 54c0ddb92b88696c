"""Hold N MB of resident memory for a few seconds (long enough for Slurm's accounting poll to see it)."""

import sys
import time

mb = int(sys.argv[1])
block = bytearray(mb * 1024 * 1024)
for i in range(0, len(block), 4096):  # touch every page so it is resident, not just reserved
    block[i] = 1
print(f"holding {mb} MB", flush=True)
time.sleep(8)
print("done", flush=True)
