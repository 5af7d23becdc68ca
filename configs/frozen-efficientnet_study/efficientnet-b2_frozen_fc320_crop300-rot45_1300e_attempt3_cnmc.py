# The frozen-EfficientNet report, attempt 3: attempt 2 trained on to 1,300 epochs in all
# (`mmbloodcell reproduce frozen-efficientnet` resumes attempt 2's last checkpoint).
_base_ = './efficientnet-b2_frozen_fc320_crop300-rot45_500e_attempt2_cnmc.py'

train_cfg = dict(max_epochs=1300)
