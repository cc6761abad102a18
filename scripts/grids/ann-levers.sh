# Accuracy levers on the ANN stage (issue 16), at the 64 px proxy: the shipped recipe's ANN
# (msresnet18 x0.5, a Unit at stage 2, 60 epochs) as it is, with batch mixing, with the weight
# average, and with both; 3 seeds, the ANN's validation top-1 (scripts/seed_grid.sh).
# The ANN is the SNN stages' starting point and their distillation teacher.
ANN_ONLY=1
COMMON="--input 64 --quiet"
MIX="--mixup 0.2 --cutmix 1.0 --mix-prob 0.5"
EMA="--ema 0.999"
CELLS=(
  "ann-base||"
  "ann-mix|$MIX|"
  "ann-ema|$EMA|"
  "ann-mix-ema|$MIX $EMA|"
)
