#!/usr/bin/env bash
# Relation testing: SGB's report, the results JSON, the per-predicate recall chart and the predictions file.
#   bash scripts/test.sh predcls 2 MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX <confusion.npy>
# Arguments: MODE (predcls | sgcls | sgdet), STAGE (1 | 2: stage 2 tests the clean classifier with the
# transfer classifier), then KEY VALUE overrides (MODEL.WEIGHT to test a given file). Environment as
# scripts/train.sh; OUTPUT_DIR defaults to the training run's folder, whose last checkpoint is tested when
# MODEL.WEIGHT is not given.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/_launch.sh"
relation_tool relation_test_net.py test.sh "$@"
