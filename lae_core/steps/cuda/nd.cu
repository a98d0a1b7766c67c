// Stochastic nested dropout on the samples as a packed step (lae_core/steps/packed.py,
// NdStep). Per run i, with X (n, m), W = [W1; W2^T] (2k, m), the cut-offs b (n,) of this
// epoch and mask[t, a] = (a <= b[t]) (lae_core/objectives.py, nd_grads):
//   Y = X W^T = [Z | Y2],  Zm = mask o Z,  H = mask o (Zm G - Y2),  T = X^T [H | Zm],
//   g1 = (2/n) T[:, :k]^T,  g2^T = (2/n) ((Zm^T Zm)^T W2^T - T[:, k:]^T).
// The products are cuBLAS calls on these buffers as they lie; the kernels below are the
// elementwise work between them. Y, HZ (n, r, 2k) and T (m, r, 2k) hold every run side by side.

template<typename T>
__global__ void lae_nd_mask(const long long total, const int r, const int k, const int m,
        const int n, const T* __restrict__ Y, const int* __restrict__ cutoffs,
        T* __restrict__ HZ, const T* __restrict__ W, T* __restrict__ G) {
    // threads [0, n r k): Zm into HZ[:, :, k:]; the next r k k threads: G = W2T W2T^T
    // (one launch for both: they are independent, and a launch is what an epoch pays for)
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long masks = (long long)n * r * k;
    if (idx < masks) {
        const long long t = idx / ((long long)r * k);
        const int i = (int)((idx / k) % r), a = (int)(idx % k);
        const long long at = (t * r + i) * 2 * k;
        HZ[at + k + a] = a <= cutoffs[(long long)i * n + t] ? Y[at + a] : (T)0;
        return;
    }
    const long long g = idx - masks;
    if (g >= total - masks) return;
    const long long kk = (long long)k * k, i = g / kk;
    const int a = (int)((g % kk) / k), c = (int)(g % k);
    const T* A = W + (i * 2 * k + k + a) * (long long)m;
    const T* B = W + (i * 2 * k + k + c) * (long long)m;
    T acc = (T)0;
    for (int j = 0; j < m; ++j) acc = acc + A[j] * B[j];
    G[g] = acc;
}

template<typename T>
__global__ void lae_nd_residual(const long long total, const int r, const int k, const int n,
        const T* __restrict__ Y, const int* __restrict__ cutoffs, T* __restrict__ HZ) {
    // H = mask o (Zm G - Y2), in place over Zm G in HZ[:, :, :k]: thread (t, i, a)
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const long long t = idx / ((long long)r * k);
    const int i = (int)((idx / k) % r), a = (int)(idx % k);
    const long long at = (t * r + i) * 2 * k;
    HZ[at + a] = a <= cutoffs[(long long)i * n + t] ? HZ[at + a] - Y[at + k + a] : (T)0;
}

template<typename T, int OPT>
__global__ void lae_nd_tail(const long long total, const int r, const int k, const int m,
        const T scale, T* __restrict__ W, const T* __restrict__ Tm,
        const T* __restrict__ prod2, const T* __restrict__ lr, T* __restrict__ s1,
        T* __restrict__ s2, const T c1, const T c2, const T c3, const T c4, const T c5,
        const T c6, const T floor) {
    // thread (i, q, j) of W (r, 2k, m): its gradient (scale = 2/n), the update, the flush
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const long long per_run = 2LL * k * m;
    const long long i = idx / per_run;
    const int q = (int)((idx % per_run) / m), j = (int)(idx % m);
    const T t = Tm[((long long)j * r + i) * 2 * k + q];
    const T g = q < k ? scale * t
                      : (prod2[(i * k + (q - k)) * (long long)m + j] - t) * scale;
    W[idx] = lae_flushed(lae_update<T, OPT>(W[idx], g, s1, s2, idx, lr[i], c1, c2, c3, c4,
                                            c5, c6), floor);
}
