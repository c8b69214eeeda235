#!/usr/bin/env bash
# The comparison table on SynthVG on a CPU, PredCls (README "The comparison table"): the frequency baseline;
# IMP, Motifs, VCTree, Transformer and HCA stage 1 (plain cross-entropy); Motifs + TDE (SGB's causal
# predictor on the Motifs context, trained with EFFECT_TYPE none, tested with TDE; beside it the same model
# without TDE); Motifs, Transformer and HCA + the two-stage ReBalance recipe; HCA + ReBalance-HCA's own
# three-run recipe. Runs scripts/faithful_recipe.sh first (which runs scripts/quickstart.sh), then the other
# contexts beside the quickstart's runs in OUTPUT_ROOT. Ends with one table: R@20/50/100, mR@20/50/100, F@50,
# head/body/tail mR@50 and the training time in seconds (a ReBalance row adds up every run its model needed;
# the TDE row is its training run's). Every step reuses its output when it exists (a rerun prints the table).
# Extra KEY VALUE arguments override the relation configs of every run.
#   Environment: SYNTHVG_DIR (datasets/synthvg), SYNTHVG_IMAGES (4000), OUTPUT_ROOT (output/quickstart), MARKDOWN
#   (set: the final table in Markdown); SynthVG's VG150 layout only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_synthvg_runs.sh"

step "1/9 the quickstart and the faithful ReBalance-HCA recipe (HCA, Transformer, frequency baseline)"
bash scripts/faithful_recipe.sh "$@"

step "2/9 IMP stage 1"
relation_tool relation_train_net.py IMP OUTPUT_DIR "$OUT/imp_stage1" "$@"

step "3/9 Motifs stage 1"
relation_tool relation_train_net.py Motifs OUTPUT_DIR "$OUT/motifs_stage1" "$@"

step "4/9 VCTree stage 1"
relation_tool relation_train_net.py VCTree OUTPUT_DIR "$OUT/vctree_stage1" "$@"

step "5/9 Motifs + TDE: the causal predictor trained (EFFECT_TYPE none) and tested as it is"
relation_tool relation_train_net.py Causal_Motifs OUTPUT_DIR "$OUT/causal_motifs" "$@"

step "6/9 Motifs + TDE: the same weights tested with the total direct effect"
relation_tool relation_test_net.py Causal_Motifs MODEL.WEIGHT "$OUT/causal_motifs/model_final.pth" \
  MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE TDE OUTPUT_DIR "$OUT/motifs_tde" "$@"

step "7/9 the confusion matrices of the Motifs and Transformer stage-1 models"
confusion_matrix Motifs motifs_stage1 "$@"
confusion_matrix HCA transformer_stage1 MODEL.ROI_RELATION_HEAD.PREDICTOR TransformerPredictor "$@"

step "8/9 Motifs + ReBalance: stage 2"
stage2 Motifs motifs_stage1 "$OUT/motifs_stage1/predicate_confusion_matrix.npy" motifs_stage2 "$@"

step "9/9 Transformer + ReBalance: stage 2"
stage2 HCA transformer_stage1 "$OUT/transformer_stage1/predicate_confusion_matrix.npy" transformer_stage2 \
  MODEL.ROI_RELATION_HEAD.PREDICTOR TransformerPredictor "$@"

echo
echo "== the comparison table: SynthVG test split, PredCls ($((SECONDS - SECONDS_AT_START)) s in all)"
"$PY" tools/compare_runs.py --columns full ${MARKDOWN:+--markdown} \
  "frequency baseline=$OUT/frequency" \
  "IMP=$OUT/imp_stage1" \
  "Motifs=$OUT/motifs_stage1" \
  "VCTree=$OUT/vctree_stage1" \
  "Transformer=$OUT/transformer_stage1" \
  "HCA=$OUT/hca_stage1" \
  "Motifs (causal, no TDE)=$OUT/causal_motifs" \
  "Motifs + TDE=$OUT/motifs_tde" \
  "Motifs + ReBalance=$OUT/motifs_stage2" \
  "Transformer + ReBalance=$OUT/transformer_stage2" \
  "HCA + ReBalance=$OUT/hca_stage2" \
  "HCA + ReBalance, RB's 3 runs=$OUT/hca_rb_stage2" \
  --trained-in "Motifs + TDE=$OUT/causal_motifs" \
  --trained-in "Motifs + ReBalance=$OUT/motifs_stage1,$OUT/motifs_stage2" \
  --trained-in "Transformer + ReBalance=$OUT/transformer_stage1,$OUT/transformer_stage2" \
  --trained-in "HCA + ReBalance=$OUT/hca_stage1,$OUT/hca_stage2" \
  --trained-in "HCA + ReBalance, RB's 3 runs=$OUT/hca_stage1,$OUT/hca_rb_stage1,$OUT/hca_rb_stage2"
