// The rest of a small-k epoch as kernels (lae_core/steps/kernels.py, CupyKernels), so that
// the eigenbasis epoch needs no cuBLAS call and a block of epochs can be captured as one CUDA
// graph (CuPy refuses cuBLAS during capture). One thread per output, no synchronisation:
// tests/core/steps/test_cuda_source.py runs these kernels on the host.
template<typename T>
__global__ void lae_grams(const long long total, const int k, const int m,
        const T* __restrict__ W, const T* __restrict__ Q, T* __restrict__ S,
        T* __restrict__ G, const T floor) {
    // S = P W1^T (P = Q[:k]) and G = W2T W2T^T of every run, flushed: thread (i, which, a, b)
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int kk = k * k;
    const long long i = idx / (2 * kk);
    const int rem = (int)(idx % (2 * kk)), which = rem / kk, a = (rem % kk) / k, b = rem % k;
    const long long base = i * 2 * k * (long long)m;
    const T* A = which == 0 ? Q + base + (long long)a * m : W + base + (long long)(k + a) * m;
    const T* B = W + base + (long long)((which == 0 ? 0 : k) + b) * m;
    T acc = (T)0;
    for (int j = 0; j < m; ++j) acc = acc + A[j] * B[j];
    if (fabs(acc) < floor) acc = (T)0;
    (which == 0 ? S : G)[i * kk + a * k + b] = acc;
}

template<typename T>
__device__ T lae_flushed(const T x, const T floor) {
    return fabs(x) < floor ? (T)0 : x;
}

template<typename T>
__global__ void lae_coefficients(const long long total, const int k, const int model,
        T* __restrict__ S, T* __restrict__ G, const T* __restrict__ M2,
        T* __restrict__ K1, T* __restrict__ K2, T* __restrict__ L1, const T floor) {
    // K1, K2 (and L1) of every run, as packed.py's rules: model 0 L2, 1 RAG, 2 nd_exp.
    // S and G are flushed here (read flushed, written back flushed): the cuBLAS products
    // leave them raw. A thread may read S[q, p] before or after its owner wrote it back;
    // flushing is idempotent, so both give the same value.
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int kk = k * k, p = (int)(idx % kk) / k, q = (int)(idx % k);
    const long long i = idx / kk, at = i * kk + (long long)p * k + q;
    const T two = (T)2, Spq = lae_flushed(S[at], floor),
          Sqp = lae_flushed(S[i * kk + (long long)q * k + p], floor),
          Gpq = lae_flushed(G[at], floor);
    S[at] = Spq;
    G[at] = Gpq;
    if (model == 2) {
        K1[at] = Gpq * M2[p * k + q];
        K2[at] = Sqp * M2[q * k + p];
        return;
    }
    K1[at] = Gpq * two;
    if (model == 0) {
        K2[at] = Sqp * two;
        return;
    }
    const T A = ((p < q ? Spq : (T)0) - (q < p ? Sqp : (T)0)) / two;
    K2[at] = Sqp * two - A;
    L1[at] = -A;
}

template<typename T>
__global__ void lae_left(const long long total, const int k, const int m, const int rows,
        const T* __restrict__ W, const T* __restrict__ Q, const T* __restrict__ K1,
        const T* __restrict__ K2, const T* __restrict__ L1, T* __restrict__ prod1,
        T* __restrict__ prod2, T* __restrict__ E) {
    // prod1 = K1 P, prod2 = K2 W2T and (rows = 3k, RAG) E = L1 W1: thread (i, row, j)
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const long long i = idx / ((long long)rows * m);
    const int q = (int)((idx / m) % rows), j = (int)(idx % m), part = q / k, a = q % k;
    const long long base = i * 2 * k * (long long)m, kk = (long long)k * k;
    const T* K = (part == 0 ? K1 : part == 1 ? K2 : L1) + i * kk + (long long)a * k;
    const T* V = (part == 0 ? Q + base : part == 1 ? W + base + (long long)k * m : W + base);
    T acc = (T)0;
    for (int l = 0; l < k; ++l) acc = acc + K[l] * V[(long long)l * m + j];
    (part == 0 ? prod1 : part == 1 ? prod2 : E)[i * k * (long long)m + (long long)a * m + j] = acc;
}
