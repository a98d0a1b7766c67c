// The linear VAE on the fused path (lae_core/steps/packed.py, FusedVaeRule): its log-variances
// v (r, k) and log noise s (r,) live in fixed device buffers and are updated by two kernels of
// their own, so a VAE epoch allocates nothing. Gradients as lae_core/objectives.py, vae_grads:
//   dv = (e^v - 1) / 2 + diag(G) e^v / (2 sigma^2),   ds = m / 2 - T / (2 sigma^2),
//   T = sum(e^v diag(G)) + tr(C) - 2 <W2T, P> + <S, G>,   sigma^2 = e^s.
// One thread per output, no synchronisation (tests/core/steps run them on the host).

// One optimizer update of p with gradient g, in torch's operation order (as lae_tail):
// OPT 0 gd, 1 Nesterov SGD (state s1), 2 Adam (s1, s2); c1..c6 as lae_tail's.
template<typename T, int OPT>
__device__ T lae_update(const T p, const T g, T* s1, T* s2, const long long at, const T lr,
        const T c1, const T c2, const T c3, const T c4, const T c5, const T c6) {
    if (OPT == 0) return p - lr * g;
    if (OPT == 1) {
        const T buf = s1[at] * c1 + g;
        s1[at] = buf;
        return p - (buf * c1 + g) * lr;
    }
    const T mu = (g - s1[at]) * c1 + s1[at];
    const T nu = (g * c2) * g + s2[at] * c3;
    s1[at] = mu;
    s2[at] = nu;
    return p - (mu / (sqrt(nu) / c5 + c6)) * (lr / c4);
}

template<typename T, int OPT>
__global__ void lae_vae_coefficients(const long long total, const int k, const int m,
        const T* __restrict__ W, const T* __restrict__ Q, T* __restrict__ S,
        T* __restrict__ G, T* __restrict__ K1, T* __restrict__ K2, T* __restrict__ b,
        T* __restrict__ scale, T* __restrict__ v, T* __restrict__ v1, T* __restrict__ v2,
        const T* __restrict__ s, T* __restrict__ terms, const T* __restrict__ lr,
        const T c1, const T c2, const T c3, const T c4, const T c5, const T c6,
        const T floor) {
    // thread (i, a): row a of K1 = G and K2 = S^T, the rows' b = (0, e^v) and scale
    // 1 / sigma^2, unit a's terms of T (r, 3k), then v[i, a] moves. S and G are flushed
    // (read flushed, row a written back flushed; flushing is idempotent, so reading a row
    // another thread writes gives the same value either way).
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const long long i = idx / k, kk = (long long)k * k;
    const int a = (int)(idx % k);
    const long long row = i * kk + (long long)a * k, base = i * 2 * k * (long long)m;
    T sg = (T)0;
    for (int c = 0; c < k; ++c) {
        const T Sac = lae_flushed(S[row + c], floor), Gac = lae_flushed(G[row + c], floor);
        S[row + c] = Sac;
        G[row + c] = Gac;
        K1[row + c] = Gac;
        K2[row + c] = lae_flushed(S[i * kk + (long long)c * k + a], floor);
        sg = sg + Sac * Gac;
    }
    const T* W2T = W + base + (long long)(k + a) * m;
    const T* P = Q + base + (long long)a * m;
    T cross = (T)0;
    for (int j = 0; j < m; ++j) cross = cross + W2T[j] * P[j];
    const T ev = exp(v[idx]), sig2 = exp(s[i]), Gaa = lae_flushed(G[row + a], floor);
    const T two = (T)2;
    // T's three sums apart, added in the reference's order by lae_vae_noise: T is a small
    // difference of large terms, so the order of its additions shows in s
    terms[i * 3 * k + a] = ev * Gaa;
    terms[i * 3 * k + k + a] = cross;
    terms[i * 3 * k + 2 * k + a] = sg;
    b[i * 2 * k + a] = (T)0;
    b[i * 2 * k + k + a] = ev;
    scale[i * 2 * k + a] = (T)1 / sig2;
    scale[i * 2 * k + k + a] = (T)1 / sig2;
    const T gv = (ev - (T)1) / two + Gaa * ev / (two * sig2);
    v[idx] = lae_flushed(lae_update<T, OPT>(v[idx], gv, v1, v2, idx, lr[i], c1, c2, c3, c4,
                                            c5, c6), floor);
}

template<typename T, int OPT>
__global__ void lae_vae_noise(const long long total, const int k, const int m,
        T* __restrict__ s, T* __restrict__ s1, T* __restrict__ s2,
        const T* __restrict__ terms, const T trace, const T* __restrict__ lr,
        const T c1, const T c2, const T c3, const T c4, const T c5, const T c6,
        const T floor) {
    // thread i: T = sum(e^v diag G) + ((tr C - 2 <W2T, P>) + <S, G>), each sum in unit order
    // (deterministic), then s[i] moves
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    T diag = (T)0, cross = (T)0, sg = (T)0;
    for (int a = 0; a < k; ++a) {
        diag = diag + terms[i * 3 * k + a];
        cross = cross + terms[i * 3 * k + k + a];
        sg = sg + terms[i * 3 * k + 2 * k + a];
    }
    const T two = (T)2, sig2 = exp(s[i]);
    const T t = diag + ((trace - two * cross) + sg);
    const T gs = (T)m / two - t / (two * sig2);
    s[i] = lae_flushed(lae_update<T, OPT>(s[i], gs, s1, s2, i, lr[i], c1, c2, c3, c4, c5, c6),
                       floor);
}
