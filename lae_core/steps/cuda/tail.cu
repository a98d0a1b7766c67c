// The fused pass of the packed step (lae_core/steps/kernels.py, CupyKernels.tail), one thread
// per element of W (r, 2k, m), for every run i, row q < 2k and column j:
//   g = prod[q, j] + a[q] Q[partner(q), j] + b[q] W[q, j] (+ E[q, j] for q < k, RAG)
//   g = s[q] g + d[q] Q[q, j]                 (has_sd: the VAE)
// then the optimizer's update of W with g in torch's operation order, the flush of W and, in
// the eigenbasis (write_q), Qn = W c. OPT is the update rule (lae_core.optim: 0 gd,
// 1 Nesterov SGD, 2 Adam); c1..c6 are Optimizer.scalars(t, dtype) for this step t.
// Compiled with --fmad=false: a*b + c stays two roundings, as NumPy computes it.

// In place: entries of a below floor in magnitude become 0 (one thread per entry).
template<typename T>
__global__ void lae_flush(T* a, const long long size, const T floor) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < size && fabs(a[idx]) < floor) a[idx] = (T)0;
}

template<typename T, int OPT>
__global__ void lae_tail(const long long total, const int k, const int m,
        T* __restrict__ W, const T* __restrict__ Q, const T* __restrict__ prod1,
        const T* __restrict__ prod2, const T* __restrict__ E, const int has_e,
        const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ s,
        const T* __restrict__ d, const int has_sd, const T* __restrict__ lr,
        T* __restrict__ s1, T* __restrict__ s2,
        const T c1, const T c2, const T c3, const T c4, const T c5, const T c6,
        const T floor, const T* __restrict__ c, T* __restrict__ Qn, const int write_q) {
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int k2 = 2 * k;
    const long long per_run = (long long)k2 * m, half = (long long)k * m;
    const long long i = idx / per_run;
    const int q = (int)((idx % per_run) / m);
    const int j = (int)(idx % m);
    T g;
    if (q < k) {
        g = prod1[i * half + (long long)q * m + j]
            + a[i * k2 + q] * Q[i * per_run + (long long)(q + k) * m + j];
    } else {
        g = prod2[i * half + (long long)(q - k) * m + j]
            + a[i * k2 + q] * Q[i * per_run + (long long)(q - k) * m + j];
    }
    g = g + b[i * k2 + q] * W[idx];
    if (has_e && q < k) g = g + E[i * half + (long long)q * m + j];
    if (has_sd) g = g * s[i * k2 + q] + d[i * k2 + q] * Q[idx];
    T p = W[idx];
    if (OPT == 0) {
        p = p - lr[i] * g;
    } else if (OPT == 1) {
        const T buf = s1[idx] * c1 + g;
        s1[idx] = buf;
        p = p - (buf * c1 + g) * lr[i];
    } else {
        const T mu = (g - s1[idx]) * c1 + s1[idx];
        const T nu = (g * c2) * g + s2[idx] * c3;
        s1[idx] = mu;
        s2[idx] = nu;
        p = p - (mu / (sqrt(nu) / c5 + c6)) * (lr[i] / c4);
    }
    if (fabs(p) < floor) p = (T)0;
    W[idx] = p;
    if (write_q) Qn[idx] = p * c[j];
}
