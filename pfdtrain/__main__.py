"""``python -m pfdtrain`` (also what ``torchrun -m pfdtrain`` launches)."""

import sys

from pfdtrain.cli import main

sys.exit(main())
