from . import transforms  # noqa: F401
from .bccd import BCCDDataError, BCCDDataset  # noqa: F401
from .cnmc import (CNMCDataError, CNMCDataset, parse_cnmc_name, patient_folds,  # noqa: F401
                   split_patients)
from .image_checks import box_problem, check_image_file, inspect_image_file  # noqa: F401
from .samplers import ClassBalancedOverSampler  # noqa: F401
