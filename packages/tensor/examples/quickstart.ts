import * as T from "@balora/tensor";

// Fit y = 3x − 1 with a Linear layer on the GPU (Dawn in Node, navigator.gpu in browsers).
export async function quickstart(): Promise<number> {
  const gpu = await T.initWebGPU();
  const layer = new T.Linear(1, 1, { bias: true, seed: 0 });
  const opt = new T.AdamW(layer.trainableParameters(), { lr: 0.1, weightDecay: 0 });
  const x = T.tensor([[-1], [0], [1], [2]]);
  const y = T.tensor([[-4], [-1], [2], [5]]);
  let loss = Infinity;
  for (let step = 0; step < 200; step++) {
    const l = T.tidy(() => {
      const err = T.sub(layer.forward(x), y);
      const mse = T.mean(T.square(err));
      T.backward(mse);
      return mse;
    });
    opt.step();
    opt.zeroGrad();
    if (step === 199) loss = await l.item();
    l.dispose();
  }
  console.log(`${gpu.description}: loss ${loss.toExponential(2)}, w ${(await layer.weight.data())[0].toFixed(3)}`);
  return loss;
}
