import { z } from 'zod';

/**
 * The server object as the worker reads it (pterodactyl-api.md §1.2–1.3), tolerant of every panel version:
 * `status` may be absent (≤1.2), `container.installed` is a bool (≤1.2) or an int (1.3+), Pelican drops `nest`,
 * and unknown fields pass through untouched. Only what identifies the server is required.
 */
const containerSchema = z.looseObject({
  startup_command: z.string().optional(),
  image: z.string().optional(),
  installed: z.union([z.boolean(), z.number()]).nullable().optional(),
  environment: z.record(z.string(), z.unknown()).optional(),
});

export const panelServerSchema = z.looseObject({
  id: z.number().int(),
  external_id: z.string().nullable().optional(),
  uuid: z.string(),
  identifier: z.string().optional(),
  name: z.string().optional(),
  description: z.string().nullable().optional(),
  status: z.string().nullable().optional(),
  suspended: z.boolean().optional(),
  user: z.number().int().optional(),
  node: z.number().int().optional(),
  allocation: z.number().int().optional(),
  nest: z.number().int().optional(),
  egg: z.number().int().optional(),
  container: containerSchema.nullable().optional(),
  updated_at: z.string().nullable().optional(),
  created_at: z.string().nullable().optional(),
});

export type PanelServer = z.infer<typeof panelServerSchema>;

export const serverEnvelopeSchema = z.looseObject({
  object: z.literal('server').optional(),
  attributes: panelServerSchema,
});

/** One page of `GET /servers` (Fractal list envelope, docs/panel.md). */
export const serverListSchema = z.looseObject({
  object: z.literal('list').optional(),
  data: z.array(serverEnvelopeSchema),
  meta: z.looseObject({
    pagination: z.looseObject({
      total: z.number().int(),
      count: z.number().int(),
      per_page: z.number().int(),
      current_page: z.number().int(),
      total_pages: z.number().int(),
    }),
  }),
});

export interface ServerPage {
  servers: PanelServer[];
  page: number;
  totalPages: number;
  total: number;
}

/** The panel's error body: `{"errors":[{"code","status","detail"}]}` (status is a string; tolerate a number). */
export const panelErrorBodySchema = z.object({
  errors: z
    .array(
      z.looseObject({
        code: z.string().optional(),
        status: z.union([z.string(), z.number()]).optional(),
        detail: z.string().optional(),
      }),
    )
    .min(1),
});
