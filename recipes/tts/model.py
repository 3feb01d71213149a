"""The TTS recipe's model: text encoder -> alignment and spectrogram decoder -> postnet.

Each component is one class, so a study can swap it:

- text encoders: ``ConvEncoder`` (three residual convolutions, Tacotron 2's) and
  ``TransformerEncoder`` (two self-attention layers over sinusoidal positions);
- decoders: ``AttentionDecoder``, autoregressive with a stop token (Tacotron), whose
  attention is location-sensitive (it sees where it attended before: Chorowski et al. 2015)
  or content-only (it must find its place from the query alone), and ``DurationDecoder``,
  non-autoregressive: a duration predictor trained on espeak's phoneme timings, and a
  length regulator that repeats each token for its frames (FastSpeech).

Every decoder returns ``(mel, alignments, extra)``: ``alignments`` is one
``(decoder steps, tokens)`` map per utterance, cropped to its lengths, which is what the
probe's attention statistics read when ``tympan.probe.attach(..., attention=["decoder"])``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoids(length: int, width: int) -> torch.Tensor:
    position = torch.arange(length)[:, None]
    rate = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    out = torch.zeros(length, width)
    out[:, 0::2], out[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)
    return out


def padding_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(batch, total) True on padded positions."""
    return torch.arange(total)[None, :] >= lengths[:, None]


class ConvBlock(nn.Module):
    def __init__(self, width: int, dropout: float, kernel: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time, width)
        return x + self.drop(F.relu(self.norm(self.conv(x.transpose(1, 2)).transpose(1, 2))))


class ConvEncoder(nn.Module):
    def __init__(self, symbols: int, width: int, dropout: float, layers: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(symbols, width, padding_idx=0)
        self.blocks = nn.Sequential(*[ConvBlock(width, dropout) for _ in range(layers)])

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keep = ~padding_mask(lengths, tokens.shape[1])
        return self.blocks(self.embed(tokens)) * keep[..., None]


class TransformerEncoder(nn.Module):
    def __init__(self, symbols: int, width: int, dropout: float, layers: int = 2,
                 heads: int = 2) -> None:
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(symbols, width, padding_idx=0)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pad = padding_mask(lengths, tokens.shape[1])
        x = self.embed(tokens) * math.sqrt(self.width) + sinusoids(tokens.shape[1], self.width)
        return self.norm(self.layers(x, src_key_padding_mask=pad)) * (~pad)[..., None]


class Attention(nn.Module):
    """Additive attention; with ``location`` its energies also see a convolution of the
    previous and the cumulative weights."""

    def __init__(self, query: int, memory: int, width: int = 64, location: bool = True,
                 filters: int = 16, kernel: int = 15) -> None:
        super().__init__()
        self.query = nn.Linear(query, width, bias=False)
        self.memory = nn.Linear(memory, width)
        self.score = nn.Linear(width, 1, bias=False)
        self.location = location
        if location:
            self.conv = nn.Conv1d(2, filters, kernel, padding=kernel // 2, bias=False)
            self.location_proj = nn.Linear(filters, width, bias=False)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                previous: torch.Tensor, cumulative: torch.Tensor,
                pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energy = keys + self.query(query)[:, None, :]
        if self.location:
            where = self.conv(torch.stack([previous, cumulative], 1)).transpose(1, 2)
            energy = energy + self.location_proj(where)
        scores = self.score(torch.tanh(energy)).squeeze(-1).masked_fill(pad, -1e9)
        weights = scores.softmax(-1)
        return torch.bmm(weights[:, None, :], memory).squeeze(1), weights


class AttentionDecoder(nn.Module):
    """Tacotron's decoder: prenet (dropout also at inference) -> attention GRU ->
    attention -> decoder GRU -> ``reduction`` frames and a stop logit per step."""

    def __init__(self, width: int, n_mels: int, reduction: int, location: bool,
                 prenet: int = 64) -> None:
        super().__init__()
        self.n_mels, self.reduction = n_mels, reduction
        self.prenet = nn.ModuleList([nn.Linear(n_mels, prenet), nn.Linear(prenet, prenet)])
        self.attention_rnn = nn.GRUCell(prenet + width, width)
        self.attention = Attention(width, width, location=location)
        self.decoder_rnn = nn.GRUCell(2 * width, width)
        self.frames = nn.Linear(2 * width, n_mels * reduction)
        self.stop = nn.Linear(2 * width, 1)

    def _prenet(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.prenet:
            x = F.dropout(F.relu(layer(x)), 0.5, training=True)
        return x

    def forward(self, memory: torch.Tensor, memory_lengths: torch.Tensor,
                target: torch.Tensor | None = None, target_lengths: torch.Tensor | None = None,
                max_steps: int = 100) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        b, n, width = memory.shape
        r = self.reduction
        pad = padding_mask(memory_lengths, n)
        keys = self.attention.memory(memory)
        if target is not None:
            steps = -(-target.shape[1] // r)
            target = F.pad(target, (0, 0, 0, steps * r - target.shape[1]))
            # The input of step k is the last frame of step k - 1 (silence at step 0).
            inputs = torch.cat([target.new_zeros(b, 1, self.n_mels),
                                target[:, r - 1:-1:r]], 1)
            prenet_inputs = self._prenet(inputs)
        else:
            steps = max_steps
        frame = memory.new_zeros(b, self.n_mels)
        h_att, h_dec = memory.new_zeros(b, width), memory.new_zeros(b, width)
        context = memory.new_zeros(b, width)
        weights = memory.new_zeros(b, n)
        weights[:, 0] = 1.0  # start at the first token
        cumulative = weights.clone()
        frames, stops, maps = [], [], []
        done = torch.zeros(b, dtype=torch.bool)
        lengths = torch.full((b,), steps)
        for k in range(steps):
            x = prenet_inputs[:, k] if target is not None else self._prenet(frame)
            h_att = self.attention_rnn(torch.cat([x, context], -1), h_att)
            context, weights = self.attention(h_att, keys, memory, weights, cumulative, pad)
            cumulative = cumulative + weights
            h_dec = self.decoder_rnn(torch.cat([h_att, context], -1), h_dec)
            out = torch.cat([h_dec, context], -1)
            frames.append(self.frames(out).view(b, r, self.n_mels))
            stops.append(self.stop(out).squeeze(-1))
            maps.append(weights)
            if target is None:
                frame = frames[-1][:, -1]
                stopped = (stops[-1] > 0) & ~done
                lengths[stopped] = k + 1
                done |= stopped
                if bool(done.all()):
                    break
        mel = torch.cat(frames, 1)
        alignment = torch.stack(maps, 1)  # (batch, steps, tokens)
        if target_lengths is not None:
            lengths = -(-target_lengths // r)
        crop = [alignment[i, :int(lengths[i]), :int(memory_lengths[i])] for i in range(b)]
        return mel, crop, torch.stack(stops, 1)


class DurationDecoder(nn.Module):
    """Non-autoregressive: predicts each token's log(1 + frames), repeats each encoder
    output for its frames (the corpus's durations in training, the predicted ones at
    inference), and turns the frames into mel with residual convolutions."""

    def __init__(self, width: int, n_mels: int, dropout: float, layers: int = 3) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.predictor = nn.Sequential(ConvBlock(width, dropout, 3), ConvBlock(width, dropout, 3),
                                       nn.Linear(width, 1))
        self.blocks = nn.Sequential(*[ConvBlock(width, dropout) for _ in range(layers)])
        self.frames = nn.Linear(width, n_mels)

    def forward(self, memory: torch.Tensor, memory_lengths: torch.Tensor,
                durations: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        keep = ~padding_mask(memory_lengths, memory.shape[1])
        log_durations = self.predictor(memory).squeeze(-1) * keep
        if durations is None:
            durations = (torch.exp(log_durations.detach()) - 1).round().clamp(min=0).long()
        durations = durations * keep
        expanded, maps = [], []
        for i in range(memory.shape[0]):
            n = int(memory_lengths[i])
            d = durations[i, :n]
            if int(d.sum()) == 0:
                d = torch.ones_like(d)  # an utterance needs at least one frame per token
            expanded.append(memory[i, :n].repeat_interleave(d, 0))
            maps.append(F.one_hot(torch.arange(n).repeat_interleave(d), n).float())
        x = nn.utils.rnn.pad_sequence(expanded, batch_first=True)
        x = x + sinusoids(x.shape[1], x.shape[2]) * 0.1
        return self.frames(self.blocks(x)), maps, log_durations


class Postnet(nn.Module):
    """Residual convolutions over the decoded mel (Tacotron 2's postnet, smaller)."""

    def __init__(self, n_mels: int, width: int, dropout: float, layers: int = 3) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_mels, width, 5, padding=2)
        self.blocks = nn.Sequential(*[ConvBlock(width, dropout) for _ in range(layers - 1)])
        self.out = nn.Linear(width, n_mels)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(mel.transpose(1, 2))).transpose(1, 2)
        return mel + self.out(self.blocks(h))


class TTSModel(nn.Module):
    """tokens -> (mel before and after the postnet, alignments, stop logits or log
    durations)."""

    def __init__(self, symbols: int, n_mels: int, encoder: str, decoder: str, width: int,
                 reduction: int, dropout: float) -> None:
        super().__init__()
        self.decoder_kind = decoder
        self.encoder = (ConvEncoder(symbols, width, dropout) if encoder == "conv"
                        else TransformerEncoder(symbols, width, dropout))
        self.decoder: nn.Module = (DurationDecoder(width, n_mels, dropout) if decoder == "duration"
                                   else AttentionDecoder(width, n_mels, reduction,
                                                         location=decoder == "location"))
        self.postnet = Postnet(n_mels, width, dropout)

    def forward(self, tokens: torch.Tensor, token_lengths: torch.Tensor,
                mel: torch.Tensor | None = None, mel_lengths: torch.Tensor | None = None,
                durations: torch.Tensor | None = None, max_steps: int = 100,
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        memory = self.encoder(tokens, token_lengths)
        if self.decoder_kind == "duration":
            coarse, maps, extra = self.decoder(memory, token_lengths, durations)
        else:
            coarse, maps, extra = self.decoder(memory, token_lengths, mel, mel_lengths,
                                               max_steps)
        return coarse, self.postnet(coarse), maps, extra
