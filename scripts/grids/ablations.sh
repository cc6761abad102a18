# The method's ablation grid over seeds (issue 16), on UC Merced at the 64 px proxy:
#   {no Units, a Unit at stage 2, a Unit at stage 3} x {temporal pruning 5 -> 1, direct T = 1}
# for msresnet18 (Units faded out over the SNN epochs, --unit-fade 1: our reconstruction of a
# gradual spatial pruning) and VGG-11 (its Unit, conv-BN-act, cannot fade into the identity: it
# is removed at once; or, u4kd, removed at once with the fine-tune distilled from the network
# before removal, --unit-teacher 1), each cell over seeds 1-3 (scripts/seed_grid.sh). Cells that
# name another cell start from that cell's ANN of the same seed; ms-u2m2 has M = 2 Units. The direct-T = 1 cell
# of a seed starts from the same seed's ANN as its pruning cell, so the two differ only in the
# SNN schedule; it trains as many SNN epochs at T = 1 as pruning trains over T = 5..1.
RUNS=/var/tmp/onespike-runs/ablations-seeds
SNN_EPOCHS=12 # 4 at T0 = 5, then 2 at each of T = 4..1: what --t0 1 trains at T = 1 instead
MS="--arch msresnet18 --width-mult 0.5"
VGG="--arch vgg11 --width-mult 0.25"
CELLS=(
  "ms-none-tp|$MS --units 0 --t0 5|"
  "ms-none-t1|$MS --units 0 --t0 1 --epochs-t0 $SNN_EPOCHS|ms-none-tp"
  "ms-u2-tp|$MS --units 1 --unit-at 2 --unit-fade 1 --t0 5|"
  "ms-u2-t1|$MS --units 1 --unit-at 2 --unit-fade 1 --t0 1 --epochs-t0 $SNN_EPOCHS|ms-u2-tp"
  "ms-u3-tp|$MS --units 1 --unit-at 3 --unit-fade 1 --t0 5|"
  "ms-u3-t1|$MS --units 1 --unit-at 3 --unit-fade 1 --t0 1 --epochs-t0 $SNN_EPOCHS|ms-u3-tp"
  "ms-u2m2-tp|$MS --units 2 --unit-at 2 --unit-fade 1 --t0 5|"
  "vgg-none-tp|$VGG --units 0 --t0 5|"
  "vgg-none-t1|$VGG --units 0 --t0 1 --epochs-t0 $SNN_EPOCHS|vgg-none-tp"
  "vgg-u4-tp|$VGG --units 1 --unit-at 4 --t0 5|"
  "vgg-u4-t1|$VGG --units 1 --unit-at 4 --t0 1 --epochs-t0 $SNN_EPOCHS|vgg-u4-tp"
  "vgg-u4kd-tp|$VGG --units 1 --unit-at 4 --unit-teacher 1 --t0 5|vgg-u4-tp"
  "vgg-u4kd-t1|$VGG --units 1 --unit-at 4 --unit-teacher 1 --t0 1 --epochs-t0 $SNN_EPOCHS|vgg-u4-tp"
)
COMMON="--input 64 --epochs-ann 60 --epochs-t0 4 --epochs-snn 2 --epochs-finetune 30
        --lr-snn 5e-4 --lr-finetune 1e-3 --distill 0.5 --surrogate-gamma 1.0 --batch 32 --quiet"
