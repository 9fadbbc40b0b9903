"""ADM UNet (Dhariwal & Nichol 2021) whose state dict matches OpenAI guided-diffusion key for key.

The module tree (``time_embed``, ``input_blocks``, ``middle_block``, ``output_blocks``, ``out``
and, inside them, ``in_layers``/``emb_layers``/``out_layers``/``skip_connection``,
``norm``/``qkv``/``proj_out``, ``op``/``conv``) follows the published checkpoints, so
``load_state_dict(strict=True)`` works on ``256x256_diffusion_uncond.pt``. The network is
configured by :class:`~egg_cli.diffusion.config.UNetConfig` (the flags of ``create_model``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from egg_cli.diffusion.config import UNetConfig


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (cos first, then sin) of possibly fractional timesteps: (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """Group norm computed in float32 whatever the activation dtype (as in ADM)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).type(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    """ADM's normalization layer: 32 groups."""
    return GroupNorm32(32, channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero the parameters of ``module`` (output convolutions start at zero)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimestepBlock(nn.Module):
    """A module whose forward takes the timestep embedding as a second argument."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TimestepEmbedSequential(nn.Sequential):
    """Sequential that passes the embedding to the children that take it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling, optionally followed by a 3x3 convolution (key ``conv``)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """2x downsampling by a strided 3x3 convolution or average pooling (key ``op``)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.op: nn.Module = (
            nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(TimestepBlock):
    """Residual block conditioned on the timestep embedding, optionally resampling (up/down)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd: nn.Module = Upsample(channels, False)
            self.x_upd: nn.Module = Upsample(channels, False)
        elif down:
            self.h_upd = Downsample(channels, False)
            self.x_upd = Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels)
        )
        self.out_layers = nn.Sequential(
            normalization(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection: nn.Module = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


def qkv_attention(qkv: torch.Tensor, num_heads: int, new_order: bool) -> torch.Tensor:
    """Multi-head self-attention on stacked (B, 3*H*C, T) queries, keys and values.

    ``new_order=False`` is ADM's legacy layout (heads outermost: per head q, k, v);
    ``new_order=True`` splits q, k, v first, then heads.
    """
    bs, width, length = qkv.shape
    ch = width // (3 * num_heads)
    if new_order:
        q, k, v = (part.reshape(bs * num_heads, ch, length) for part in qkv.chunk(3, dim=1))
    else:
        q, k, v = qkv.reshape(bs * num_heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    """Spatial self-attention with a residual connection (keys ``norm``, ``qkv``, ``proj_out``)."""

    def __init__(
        self, channels: int, num_heads: int = 1, num_head_channels: int = -1, use_new_attention_order: bool = False
    ) -> None:
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"{channels} channels do not split into heads of {num_head_channels} channels")
            self.num_heads = channels // num_head_channels
        self.new_order = use_new_attention_order
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = qkv_attention(self.qkv(self.norm(x)), self.num_heads, self.new_order)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class UNetModel(nn.Module):
    """The ADM UNet: ``forward(x, timesteps, y=None)`` -> (B, out_channels, H, W).

    ``timesteps`` are the (possibly respaced-to-original) diffusion steps, one per element.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        mc = config.num_channels
        mult = config.channel_mult_tuple
        attention_ds = config.attention_downsample_rates
        heads_up = config.num_heads if config.num_heads_upsample == -1 else config.num_heads_upsample
        emb_dim = mc * 4
        self.dtype = torch.float32
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if config.class_cond:
            self.label_emb = nn.Embedding(config.num_classes, emb_dim)

        def res(ch_in: int, ch_out: int, **updown: bool) -> ResBlock:
            return ResBlock(ch_in, emb_dim, config.dropout, ch_out, config.use_scale_shift_norm, **updown)

        def attn(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(ch, heads, config.num_head_channels, config.use_new_attention_order)

        ch = int(mult[0] * mc)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(config.in_channels, ch, 3, padding=1))])
        skip_chans = [ch]
        ds = 1
        for level, m in enumerate(mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(m * mc))]
                ch = int(m * mc)
                if ds in attention_ds:
                    layers.append(attn(ch, config.num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(mult) - 1:
                down = res(ch, ch, down=True) if config.resblock_updown else Downsample(ch, True, ch)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(res(ch, ch), attn(ch, config.num_heads), res(ch, ch))
        self.output_blocks = nn.ModuleList([])
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(config.num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), int(mc * m))]
                ch = int(mc * m)
                if ds in attention_ds:
                    layers.append(attn(ch, heads_up))
                if level and i == config.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if config.resblock_updown else Upsample(ch, True, ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(nn.Conv2d(int(mult[0] * mc), config.out_channels, 3, padding=1))
        )

    def convert_blocks(self, dtype: torch.dtype) -> None:
        """Run the input, middle and output blocks in ``dtype`` (fp16/bf16 on a GPU), as ADM does;
        the time embedding, the embedding projections, the output head and all group norms
        stay in float32 (only convolutions are converted, as in guided-diffusion)."""
        self.dtype = dtype
        for blocks in (self.input_blocks, self.middle_block, self.output_blocks):
            for module in blocks.modules():
                if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                    module.to(dtype)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(timesteps, self.config.num_channels))
        if self.config.class_cond:
            if y is None:
                raise ValueError("a class-conditional UNet needs labels y")
            emb = emb + self.label_emb(y)
        skips = []
        h = x.type(self.dtype)
        for module in self.input_blocks:
            h = module(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for module in self.output_blocks:
            h = module(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.type(x.dtype))
