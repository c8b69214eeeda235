"""YACS defaults with Scene-Graph-Benchmark.pytorch (SGB) key names.

Every key an SGB or ReBalance-HCA command line sets exists here under the same name, so such a command
line works with only the entry point changed. Values follow SGB's ``defaults.py`` unless
docs/reference.md#deliberate-deviations
says the project decided otherwise; keys this project adds are marked "(ours)".
Precedence: these defaults < ``--config-file`` yaml < command-line ``KEY VALUE`` pairs (see ``config.load``).
"""
from yacs.config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.FLIP_AUG = False
_C.MODEL.RPN_ONLY = False
_C.MODEL.MASK_ON = False
_C.MODEL.RETINANET_ON = False
_C.MODEL.KEYPOINT_ON = False
_C.MODEL.ATTRIBUTE_ON = False
_C.MODEL.RELATION_ON = False
_C.MODEL.DEVICE = "cuda"
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
_C.MODEL.CLS_AGNOSTIC_BBOX_REG = False
# Checkpoint of the whole model to load (test, or continue from a file); resume from OUTPUT_DIR wins (ours).
_C.MODEL.WEIGHT = ""
# Detector checkpoint loaded under the relation head (SGG training / testing).
_C.MODEL.PRETRAINED_DETECTOR_CKPT = ""
# Box convention inside the detector (ours, docs/detector.md): "torchvision" (continuous), "sgb" (SGB's +1
# convention, to reproduce SGB's detector outputs), or "" = the convention recorded by WEIGHT, else
# PRETRAINED_MODEL_CKPT, else PRETRAINED_DETECTOR_CKPT ("sgb" for an SGB file; our checkpoints record
# theirs), else "torchvision".
_C.MODEL.BOX_CONVENTION = ""
# Stage-1 model loaded in stage 2 (RB / G2S).
_C.MODEL.PRETRAINED_MODEL_CKPT = ""
# Backbone ImageNet weights: a local file (ours). Empty = random init unless BACKBONE_DOWNLOAD is True.
_C.MODEL.BACKBONE_WEIGHTS = ""
# Explicit opt-in to torchvision's weight download for the backbone (ours); never silent.
_C.MODEL.BACKBONE_DOWNLOAD = False

_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.CONV_BODY = "R-50-FPN"
_C.MODEL.BACKBONE.FREEZE_CONV_BODY_AT = 2

_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.NUM_GROUPS = 1
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
_C.MODEL.RESNETS.BACKBONE_OUT_CHANNELS = 256 * 4

_C.MODEL.FPN = CN()
_C.MODEL.FPN.USE_GN = False
_C.MODEL.FPN.USE_RELU = False

_C.MODEL.RPN = CN()
_C.MODEL.RPN.USE_FPN = True
_C.MODEL.RPN.RPN_MID_CHANNEL = 256
_C.MODEL.RPN.ANCHOR_SIZES = (32, 64, 128, 256, 512)
_C.MODEL.RPN.ANCHOR_STRIDE = (4, 8, 16, 32, 64)
# h/w aspect ratios from neural-motifs (docs/reference.md#detector-architecture).
_C.MODEL.RPN.ASPECT_RATIOS = (0.23232838, 0.63365731, 1.28478321, 3.15089189)
_C.MODEL.RPN.STRADDLE_THRESH = 0
_C.MODEL.RPN.FG_IOU_THRESHOLD = 0.7
_C.MODEL.RPN.BG_IOU_THRESHOLD = 0.3
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5
_C.MODEL.RPN.PRE_NMS_TOP_N_TRAIN = 6000
_C.MODEL.RPN.PRE_NMS_TOP_N_TEST = 6000
_C.MODEL.RPN.POST_NMS_TOP_N_TRAIN = 1000
_C.MODEL.RPN.POST_NMS_TOP_N_TEST = 1000
_C.MODEL.RPN.NMS_THRESH = 0.7
_C.MODEL.RPN.MIN_SIZE = 0
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN = 1000
_C.MODEL.RPN.FPN_POST_NMS_TOP_N_TEST = 1000
_C.MODEL.RPN.FPN_POST_NMS_PER_BATCH = False
_C.MODEL.RPN.RPN_HEAD = "SingleConvRPNHead"

_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.USE_FPN = True
_C.MODEL.ROI_HEADS.FG_IOU_THRESHOLD = 0.5
_C.MODEL.ROI_HEADS.BG_IOU_THRESHOLD = 0.3
_C.MODEL.ROI_HEADS.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.5
_C.MODEL.ROI_HEADS.SCORE_THRESH = 0.01
_C.MODEL.ROI_HEADS.NMS = 0.3
_C.MODEL.ROI_HEADS.POST_NMS_PER_CLS_TOPN = 300
_C.MODEL.ROI_HEADS.NMS_FILTER_DUPLICATES = True
_C.MODEL.ROI_HEADS.DETECTIONS_PER_IMG = 80

_C.MODEL.ROI_BOX_HEAD = CN()
_C.MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR = "FPN2MLPFeatureExtractor"
_C.MODEL.ROI_BOX_HEAD.PREDICTOR = "FPNPredictor"
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2
_C.MODEL.ROI_BOX_HEAD.POOLER_SCALES = (0.25, 0.125, 0.0625, 0.03125)
_C.MODEL.ROI_BOX_HEAD.NUM_CLASSES = 151
_C.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM = 4096

_C.MODEL.ROI_MASK_HEAD = CN()
_C.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO = 2
_C.MODEL.ROI_MASK_HEAD.CONV_LAYERS = (256, 256, 256, 256)
_C.MODEL.ROI_MASK_HEAD.RESOLUTION = 28

_C.MODEL.ROI_RELATION_HEAD = CN()
_C.MODEL.ROI_RELATION_HEAD.PREDICTOR = "TransformerTransferPredictor"
_C.MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR = "RelationFeatureExtractor"
_C.MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS = True
_C.MODEL.ROI_RELATION_HEAD.NUM_CLASSES = 51
_C.MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE = 1024
_C.MODEL.ROI_RELATION_HEAD.POSITIVE_FRACTION = 0.25
_C.MODEL.ROI_RELATION_HEAD.USE_GT_BOX = True
_C.MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL = False
_C.MODEL.ROI_RELATION_HEAD.EMBED_DIM = 200
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_DROPOUT_RATE = 0.2
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM = 512
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM = 4096
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_OBJ_LAYER = 1
_C.MODEL.ROI_RELATION_HEAD.CONTEXT_REL_LAYER = 1
_C.MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS = False
_C.MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION = True
_C.MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS = True
_C.MODEL.ROI_RELATION_HEAD.REQUIRE_BOX_OVERLAP = False
_C.MODEL.ROI_RELATION_HEAD.NUM_SAMPLE_PER_GT_REL = 4
_C.MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN = True
_C.MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER = False
_C.MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER = False
_C.MODEL.ROI_RELATION_HEAD.VAL_ALPHA = 0.0
# Dropout on the looked-up frequency-bias vector in training (RB: 0.3; SGB's predictors: none) (ours as a key).
_C.MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT = 0.3
# Predicate confusion matrix, a (P, P) .npy of counts (row = GT, column = predicted) written by
# tools/compute_confusion_matrix.py; used by the reweighting loss and the transfer classifier (ours).
_C.MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX = ""
# Transfer classifier map: "half_identity" A = (P + I) / 2 (RB) or "confusion" A = P (G2S) (ours).
_C.MODEL.ROI_RELATION_HEAD.TRANSFER_MATRIX = "half_identity"

# Relation loss (docs/reference.md#predicate-reweighting-loss; ours as keys: RB hard-codes these constants).
_C.MODEL.ROI_RELATION_HEAD.LOSS = CN()
# "PredicateReweighting" (RB), "CrossEntropy" or "ClassBalanced" (effective-number weights,
# docs/reference.md#class-balanced-weights);
# "" = by stage: CrossEntropy for stage 1's common model, PredicateReweighting for stage 2 (docs/training.md).
_C.MODEL.ROI_RELATION_HEAD.LOSS.TYPE = ""
_C.MODEL.ROI_RELATION_HEAD.LOSS.CORRELATION_THRESHOLD = 0.9
_C.MODEL.ROI_RELATION_HEAD.LOSS.MITIGATION_EXPONENT = 1.5
_C.MODEL.ROI_RELATION_HEAD.LOSS.COMPENSATION_EXPONENT = 2.0
_C.MODEL.ROI_RELATION_HEAD.LOSS.MAX_COUNT_RATIO = 1000.0
_C.MODEL.ROI_RELATION_HEAD.LOSS.CLASS_BALANCED_BETA = 0.99999

_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER = CN()
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.DROPOUT_RATE = 0.1
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.OBJ_LAYER = 4
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.REL_LAYER = 2
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD = 8
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.INNER_DIM = 2048
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.KEY_DIM = 64
_C.MODEL.ROI_RELATION_HEAD.TRANSFORMER.VAL_DIM = 64

# SGB's causal TDE predictor (CausalAnalysisPredictor; docs/relation_head.md#causal-tde), SGB's keys and defaults.
_C.MODEL.ROI_RELATION_HEAD.CAUSAL = CN()
# Keep the untreated moving averages in training and run the counterfactual pass at test time.
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS = False
# Multiply the pair context by an embedding of the 32-d pair geometry.
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.SPATIAL_FOR_VISION = False
# SGB's separate spatial branch of the union features; True is refused (not in this union extractor).
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.SEPARATE_SPATIAL = False
# "sum" or "gate": how the visual, context and frequency logits combine.
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.FUSION_TYPE = "sum"
# "motifs" or "vtranse": the context the predictor runs on.
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER = "motifs"
# "none" (factual logits), "TDE", "NIE" or "TE": the test-time logits (training always uses the factual ones).
_C.MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE = "none"

# Stage-2 rebalanced train split (docs/reference.md#rebalanced-split; ours as keys: RB hard-codes top 15 and cap 2000).
_C.MODEL.ROI_RELATION_HEAD.REBALANCE = CN()
_C.MODEL.ROI_RELATION_HEAD.REBALANCE.TOP_K_PREDICATES = 15
_C.MODEL.ROI_RELATION_HEAD.REBALANCE.MAX_INSTANCES = 2000

# BGNN's bi-level resampling of the train split (PySGG's keys and values;
# docs/reference.md#bi-level-resampling), off by default.
_C.MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING = False
_C.MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING_METHOD = "bilvl"
_C.MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING_PARAM = CN()
_C.MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING_PARAM.REPEAT_FACTOR = 0.1
_C.MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING_PARAM.INSTANCE_DROP_RATE = 0.85

# ---------------------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = (600,)
_C.INPUT.MAX_SIZE_TRAIN = 1000
_C.INPUT.MIN_SIZE_TEST = 600
_C.INPUT.MAX_SIZE_TEST = 1000
_C.INPUT.PIXEL_MEAN = [102.9801, 115.9465, 122.7717]
_C.INPUT.PIXEL_STD = [1.0, 1.0, 1.0]
_C.INPUT.TO_BGR255 = True
_C.INPUT.BRIGHTNESS = 0.0
_C.INPUT.CONTRAST = 0.0
_C.INPUT.SATURATION = 0.0
_C.INPUT.HUE = 0.0
_C.INPUT.VERTICAL_FLIP_PROB_TRAIN = 0.0
# SGB hard-codes 0.5 in its training transforms; a key here so a user can change it (ours).
_C.INPUT.HORIZONTAL_FLIP_PROB_TRAIN = 0.5

# ---------------------------------------------------------------------------------------------------------
# Datasets and loading
# ---------------------------------------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ("VG_stanford_filtered_with_attribute_train",)
_C.DATASETS.VAL = ("VG_stanford_filtered_with_attribute_val",)
_C.DATASETS.TEST = ("VG_stanford_filtered_with_attribute_test",)
# Root of the catalog's relative paths (ours as a key; SGB: DATA_DIR in paths_catalog.py).
# Empty = $REBALANCE_HCA_DATA_DIR if set, else "datasets" relative to the working directory.
_C.DATASETS.DATA_DIR = ""
# Images carved out of the split-0 pool for val (docs/reference.md#vg150-split-selection).
_C.DATASETS.NUM_VAL_IM = 5000
# Train-split duplicate-relation filter (docs/reference.md#vg150-ground-truth).
_C.DATASETS.FILTER_DUPLICATE_RELS = True

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.SIZE_DIVISIBILITY = 32
_C.DATALOADER.ASPECT_RATIO_GROUPING = True

# ---------------------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.BASE_LR = 0.002
_C.SOLVER.BIAS_LR_FACTOR = 2
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.WEIGHT_DECAY = 0.0005
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0
_C.SOLVER.CLIP_NORM = 5.0
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEPS = (30000,)
_C.SOLVER.WARMUP_FACTOR = 1.0 / 3
_C.SOLVER.WARMUP_ITERS = 500
_C.SOLVER.WARMUP_METHOD = "linear"
_C.SOLVER.SCHEDULE = CN()
_C.SOLVER.SCHEDULE.TYPE = "WarmupMultiStepLR"
_C.SOLVER.SCHEDULE.PATIENCE = 2
_C.SOLVER.SCHEDULE.THRESHOLD = 1e-4
_C.SOLVER.SCHEDULE.COOLDOWN = 1
_C.SOLVER.SCHEDULE.FACTOR = 0.5
_C.SOLVER.SCHEDULE.MAX_DECAY_STEP = 7
_C.SOLVER.CHECKPOINT_PERIOD = 2500
_C.SOLVER.GRAD_NORM_CLIP = 5.0
_C.SOLVER.PRINT_GRAD_FREQ = 5000
_C.SOLVER.TO_VAL = True
_C.SOLVER.PRE_VAL = True
_C.SOLVER.VAL_PERIOD = 2500
_C.SOLVER.UPDATE_SCHEDULE_DURING_LOAD = False
# Global batch size over all processes.
_C.SOLVER.IMS_PER_BATCH = 16

# ---------------------------------------------------------------------------------------------------------
# Test
# ---------------------------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.EXPECTED_RESULTS = []
_C.TEST.EXPECTED_RESULTS_SIGMA_TOL = 4
_C.TEST.IMS_PER_BATCH = 8
# The model sees one test image at a time, padded alone, so that predictions and metrics are the same for any
# TEST.IMS_PER_BATCH and number of processes (ours; testing, validation, the confusion matrix, detector mAP and
# the demo). False: one forward per padded batch, as SGB does; faster on a GPU, numbers depend on the batch.
_C.TEST.BATCH_INVARIANT = True
_C.TEST.DETECTIONS_PER_IMG = 100
_C.TEST.BBOX_AUG = CN()
_C.TEST.BBOX_AUG.ENABLED = False
_C.TEST.BBOX_AUG.H_FLIP = False
_C.TEST.BBOX_AUG.SCALES = ()
_C.TEST.BBOX_AUG.MAX_SIZE = 4000
_C.TEST.BBOX_AUG.SCALE_H_FLIP = False
_C.TEST.SAVE_PROPOSALS = False
_C.TEST.RELATION = CN()
_C.TEST.RELATION.MULTIPLE_PREDS = False
_C.TEST.RELATION.IOU_THRESHOLD = 0.5
_C.TEST.RELATION.REQUIRE_OVERLAP = False
_C.TEST.RELATION.LATER_NMS_PREDICTION_THRES = 0.5
_C.TEST.RELATION.SYNC_GATHER = True
# Test pairs go through the union-feature extractor and the classifier in chunks of this many pairs, which
# bounds the memory of SGDet's 80 x 79 pairs per image (ours).
_C.TEST.RELATION.PAIRS_PER_CHUNK = 512
_C.TEST.ALLOW_LOAD_FROM_CACHE = True
_C.TEST.VAL_FLAG = False
_C.TEST.CUSTUM_EVAL = False
_C.TEST.CUSTUM_PATH = "."

# ---------------------------------------------------------------------------------------------------------
# Stage 2 over cached features (ours; docs/training.md#stage-2-over-cached-features)
# ---------------------------------------------------------------------------------------------------------
_C.STAGE2 = CN()
# Keep what the frozen stage-1 part gives the clean classifier for each image view on disk and train stage 2
# on it; bit-identical to recomputing it (PredCls / SGCls with a predictor that exposes its classifier inputs).
# Off by default: at VG150's dimensions it takes about 420 GB of disk (docs/training.md); the SynthVG configs
# turn it on.
_C.STAGE2.FEATURE_CACHE = False
# The cache folder (one sub-folder per split); empty = stage2_feature_cache beside the frozen model's weights
# (stage 2: MODEL.PRETRAINED_MODEL_CKPT's folder; the confusion-matrix and test passes: the tested weights').
# With FEATURE_CACHE the confusion-matrix pass, test passes and stage 2's validations share it.
_C.STAGE2.FEATURE_CACHE_DIR = ""

# ---------------------------------------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------------------------------------
_C.OUTPUT_DIR = "."
_C.DETECTED_SGG_DIR = "."
_C.GLOVE_DIR = "."
# Seconds a process waits for the others, when the process group forms and in every collective, before it
# stops with an error naming the ranks that failed (ours; SGB used torch's fixed 30 minutes). It must exceed
# the longest time one rank works while the others wait for it (rank 0 evaluating a test split).
# docs/training.md#several-machines
_C.DIST_TIMEOUT = 1800.0
# Precision: "float32", "float16" or "bfloat16" (torch.amp; SGB's float16 meant apex O1).
_C.DTYPE = "float32"
_C.AMP_VERBOSE = False
# Seed for every random generator of a run (RB: setup_seed(20)) (ours as a key).
_C.SEED = 20
# Deterministic kernels (ours): torch.use_deterministic_algorithms, cuDNN deterministic without benchmark,
# CUBLAS_WORKSPACE_CONFIG; an operation without a deterministic implementation stops the run with its name.
# CPU training is bit-reproducible without it (docs/training.md#reproducibility).
_C.DETERMINISTIC = False
