import { keyAllowsModel, type KeyRecord } from '@homelab/bus';
import { isCloudProvider } from '@homelab/config';

/**
 * Whether a model of the catalog is one a key may use, so a model list shows it: the key's models,
 * its backends, and local-only (the router applies the same scope to each request).
 */
export function modelVisibleToKey(key: KeyRecord | undefined, model: { id: string; owned_by: string }): boolean {
  if (!key) return true;
  return keyAllowsModel(key, model.id)
    && (!key.backends || (key.backends as string[]).includes(model.owned_by))
    && (!key.localOnly || !isCloudProvider(model.owned_by));
}
