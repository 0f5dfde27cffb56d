export interface BuiltAsset {
  name: string;
  type: string;
  hash: string;
  body: string;
}
export const GENERATED: string;
export function buildUiAssets(): Promise<BuiltAsset[]>;
export function renderModule(assets: BuiltAsset[]): string;
